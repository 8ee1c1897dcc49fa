/**
 * The content of a Firefox tab: launches (or re-attaches to) a session, shows progress,
 * errors and the session's Xpra HTML5 client in an iframe, and learns from the page's
 * session store (src/store.ts) when the session ends.
 */
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { FirefoxAPI } from './api';
import {
  cleanupBody,
  describeLaunchFailure,
  endedText,
  IEndedText,
  ILaunchFailure,
  isSessionJSON,
  ISession,
  ITrans,
  launchBody,
  Lookup,
  startFailure,
  untranslated
} from './model';
import { panelScreen } from './screen';
import { IFollowing, SessionStore } from './store';
import { endedView, errorView, frameView, startingView } from './views';

/** What the tab shows (also its `data-state` attribute, for tests). */
export type PanelState = 'starting' | 'running' | 'error' | 'ended';

export namespace FirefoxPanel {
  export interface IOptions {
    api: FirefoxAPI;
    /** The page's session store: the tab follows its session there (no poll of its own). */
    store: SessionStore;
    /** The start page setting (empty: the server's start_url), read at each launch. */
    startUrl: () => string;
    trans?: ITrans;
  }
}

export class FirefoxPanel extends Widget {
  constructor(options: FirefoxPanel.IOptions) {
    super();
    this._api = options.api;
    this._store = options.store;
    this._startUrl = options.startUrl;
    this._trans = options.trans ?? untranslated;
    this.addClass('jp-FFSystemd-panel');
    this.node.tabIndex = -1;
    this._render('starting');
    window.addEventListener('blur', this._onWindowBlur);
  }

  /** Emitted when the session id or the state changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted when the user clicks into the Firefox view (to activate the tab). */
  get frameFocused(): ISignal<this, void> {
    return this._frameFocused;
  }

  get state(): PanelState {
    return this._state;
  }

  /** The session this tab shows, or null while none has been created. */
  get sessionId(): string | null {
    return this._sessionId;
  }

  /** The last session JSON the server sent for this tab. */
  get session(): ISession | null {
    return this._session;
  }

  /** The session id while it is starting or running (what a page reload re-attaches to). */
  get liveSessionId(): string | null {
    return this._state === 'running' || this._state === 'starting' ? this._sessionId : null;
  }

  /** Whether closing this tab ends a session that is still starting or running. */
  get hasLiveSession(): boolean {
    return this._sessionId !== null && (this._state === 'running' || this._state === 'starting');
  }

  /** Start a new session in this tab (ending the tab's previous one, if any). */
  async launch(): Promise<void> {
    const generation = this._begin();
    const previous = this._sessionId;
    this._sessionId = null;
    this._session = null;
    this._retry = () => this.launch();
    this._showStarting(false);
    if (previous) {
      void this._store.cleanup(cleanupBody(previous)).catch(() => undefined);
    }
    // Answered as soon as the session has an id: the client's page loads while Xpra starts
    // and connects the moment it is ready (the server holds its websocket until then).
    const screen = await panelScreen(this.node);
    if (generation !== this._generation) {
      return;
    }
    const reply = await this._api.launch({
      ...launchBody(this._startUrl()),
      wait: false,
      ...(screen ? { screen } : {})
    });
    if (generation !== this._generation) {
      // The tab was closed or restarted meanwhile: do not leave the new session running.
      if ((reply.status === 201 || reply.status === 202) && isSessionJSON(reply.body)) {
        void this._store.cleanup(cleanupBody(reply.body.id)).catch(() => undefined);
      }
      return;
    }
    if ((reply.status === 201 || reply.status === 202) && isSessionJSON(reply.body)) {
      this._sessionId = reply.body.id;
      this._store.track(reply.body);
      this._store.burst();
      // The client loads now, while the session may still start (202): it connects once
      // Xpra is ready, and the frame stays while the session is starting.
      this._session = reply.body;
      this._showFrame(reply.body);
      this._follow();
    } else {
      this._showError(describeLaunchFailure(reply.status, reply.body, this._trans));
    }
  }

  /** Show an existing session (restored tab, or opened from the running panel). */
  async attach(sessionId: string): Promise<void> {
    const generation = this._begin();
    this._sessionId = sessionId;
    this._session = null;
    this._retry = () => this.attach(sessionId);
    this._showStarting(true);
    const lookup = await this._api.lookup(sessionId);
    if (generation !== this._generation) {
      return;
    }
    if (lookup.kind === 'unknown') {
      this._showError({
        title: this._trans.__('Cannot reconnect to this Firefox session'),
        message: lookup.message,
        step: null,
        logTail: ''
      });
      return;
    }
    if (lookup.kind === 'alive' || lookup.kind === 'stopping') {
      this._store.track(lookup.session);
    }
    this._apply(lookup);
    this._follow();
  }

  /** Stop the session from the tab's toolbar; the tab stays, offering a new Firefox. */
  async stop(): Promise<void> {
    const id = this._sessionId;
    if (!id) {
      return;
    }
    this._begin();
    await this._store.cleanup(cleanupBody(id)).catch(() => undefined);
    this._showEnded({
      title: this._trans.__('You stopped this Firefox'),
      detail: this._trans.__('The session was shut down and its profile removed.')
    });
  }

  /** Load the Xpra client again (it reconnects to the same Firefox). */
  reloadFrame(): void {
    if (this._frame && this._session) {
      this._frame.src = this._session.url;
    }
  }

  /** Stop following the session and forget it, then end it on the server (tab closing). */
  shutdown(): Promise<unknown> {
    const id = this._sessionId;
    this._begin();
    if (!id) {
      return Promise.resolve();
    }
    return this._store.cleanup(cleanupBody(id)).catch(error => {
      console.warn(`ffsystemd: could not stop Firefox session ${id}`, error);
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._begin();
    window.removeEventListener('blur', this._onWindowBlur);
    super.dispose();
  }

  protected onActivateRequest(msg: Message): void {
    if (this._frame) {
      this._frame.focus();
      this._frame.contentWindow?.focus();
      return;
    }
    const button = this.node.querySelector('button');
    (button ?? this.node).focus();
  }

  /** Start a new action: cancel the clock, the subscription and answers of the previous one. */
  private _begin(): number {
    this._generation += 1;
    this._stopTimer();
    this._unfollow();
    return this._generation;
  }

  /** Learn from the store what becomes of the session, until it has ended for good. */
  private _follow(): void {
    if (this._following || !this._sessionId || this._state === 'error') {
      return;
    }
    if (this._state === 'ended' && this._session?.state !== 'stopping') {
      return;
    }
    this._following = this._store.follow(this._sessionId, lookup => this._apply(lookup));
  }

  private _unfollow(): void {
    this._following?.dispose();
    this._following = null;
  }

  /** Show what the server says: the Xpra client, still starting, or why the session ended. */
  private _apply(lookup: Lookup): void {
    switch (lookup.kind) {
      case 'alive':
        this._session = lookup.session;
        if (lookup.session.state === 'running' || this._frame) {
          this._showFrame(lookup.session);
        } else if (this._state !== 'starting') {
          this._showStarting(true);
        }
        break;
      case 'stopping':
        this._session = lookup.session;
        this._showEnded(endedText(lookup.session, this._trans), true);
        break;
      case 'ended': {
        this._session = lookup.session ?? this._session;
        // A launch that failed while starting: the failed step and Xpra's log, as before the
        // tab stopped waiting for launches; Retry starts a new Firefox.
        const failure = startFailure(lookup.session, this._trans);
        if (failure) {
          this._retry = () => this.launch();
          this._showError(failure);
        } else {
          this._showEnded(endedText(lookup.session, this._trans));
        }
        break;
      }
      case 'unknown':
        // Not known yet, or a passing error (server busy or restarting): keep what is shown.
        break;
    }
  }

  private _showStarting(attaching: boolean): void {
    this._stopTimer();
    const view = startingView(attaching, this._trans);
    this._stopClock = view.dispose;
    this._render('starting', view.node);
  }

  private _showFrame(session: ISession): void {
    this._stopTimer();
    if (this._frame && this._state === 'running') {
      return;
    }
    const frame = frameView(session.url);
    // The client's page replacing the frame's first document takes the keyboard with it back to
    // this page (Chromium: the iframe stays activeElement, keys go to JupyterLab): hand it back.
    frame.addEventListener('load', () => {
      if (this._frame === frame && document.activeElement === frame) {
        frame.focus();
        frame.contentWindow?.focus();
      }
    });
    this._render('running', frame);
    this._frame = frame;
  }

  private _showError(failure: ILaunchFailure): void {
    this._begin();
    this._render('error', errorView(failure, this._trans, () => void this._retry()));
  }

  private _showEnded(text: IEndedText, stillStopping = false): void {
    this._stopTimer();
    if (!stillStopping) {
      this._unfollow();
    }
    const key = `${text.title}\n${text.detail}`;
    if (this._state === 'ended' && this._endedKey === key) {
      return;
    }
    this._endedKey = key;
    this._render('ended', endedView(text, this._trans, () => void this.launch()));
  }

  /** Replace the panel's content and update its state attributes. */
  private _render(state: PanelState, child?: HTMLElement): void {
    const focused =
      document.activeElement === this.node || this.node.contains(document.activeElement);
    this._frame = null;
    this.node.replaceChildren(...(child ? [child] : []));
    const changed = state !== this._state || this.node.dataset.sessionId !== (this._sessionId ?? '');
    this._state = state;
    this.node.dataset.state = state;
    this.node.dataset.sessionId = this._sessionId ?? '';
    if (focused) {
      // Keep the keyboard in this tab: into Firefox's view, else onto the first button.
      const target = state === 'running' && child ? child : this.node.querySelector('button');
      (target ?? this.node).focus();
    }
    if (changed) {
      this._changed.emit();
    }
  }

  private _stopTimer(): void {
    this._stopClock?.();
    this._stopClock = null;
  }

  /** A click into the iframe blurs our window: tell the tab so it becomes the current one. */
  private _onWindowBlur = (): void => {
    window.setTimeout(() => {
      if (this._frame && document.activeElement === this._frame) {
        this._frameFocused.emit();
      }
    }, 0);
  };

  private _api: FirefoxAPI;
  private _store: SessionStore;
  private _startUrl: () => string;
  private _trans: ITrans;
  private _state: PanelState = 'starting';
  private _sessionId: string | null = null;
  private _session: ISession | null = null;
  private _frame: HTMLIFrameElement | null = null;
  private _following: IFollowing | null = null;
  private _stopClock: (() => void) | null = null;
  private _generation = 0;
  private _endedKey = '';
  private _retry: () => Promise<void> = () => this.launch();
  private _changed = new Signal<this, void>(this);
  private _frameFocused = new Signal<this, void>(this);
}

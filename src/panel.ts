/**
 * The content of a Firefox tab: launches (or re-attaches to) a session, shows progress,
 * errors and the session's Xpra HTML5 client in an iframe, and notices when it ends.
 */
import { Poll } from '@lumino/polling';
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
  launchBody,
  Lookup,
  startingText
} from './model';

/** What the tab shows (also its `data-state` attribute, for tests). */
export type PanelState = 'starting' | 'running' | 'error' | 'ended';

/** How often a shown tab asks the server whether its session still runs. */
export const STATUS_INTERVAL_MS = 3000;

export namespace FirefoxPanel {
  export interface IOptions {
    api: FirefoxAPI;
    /** The start page setting (empty: the server's start_url), read at each launch. */
    startUrl: () => string;
  }
}

export class FirefoxPanel extends Widget {
  constructor(options: FirefoxPanel.IOptions) {
    super();
    this._api = options.api;
    this._startUrl = options.startUrl;
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
      void this._api.cleanup(cleanupBody(previous)).catch(() => undefined);
    }
    const reply = await this._api.launch(launchBody(this._startUrl()));
    if (generation !== this._generation) {
      // The tab was closed or restarted meanwhile: do not leave the new session running.
      if (reply.status === 201 && isSessionJSON(reply.body)) {
        void this._api.cleanup(cleanupBody(reply.body.id)).catch(() => undefined);
      }
      return;
    }
    if (reply.status === 201 && isSessionJSON(reply.body)) {
      this._sessionId = reply.body.id;
      this._apply({ kind: 'alive', session: reply.body });
      this._startPolling();
    } else {
      this._showError(describeLaunchFailure(reply.status, reply.body));
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
        title: 'Cannot reconnect to this Firefox session',
        message: lookup.message,
        step: null,
        logTail: ''
      });
      return;
    }
    this._apply(lookup);
    this._startPolling();
  }

  /** Ask the server now whether the session still runs (e.g. after a shutdown elsewhere). */
  async check(): Promise<void> {
    if (!this._sessionId || this._state === 'error' || (this._state === 'ended' && !this._poll)) {
      // Nothing to watch: no session yet, a failed launch, or an end already known for good.
      return;
    }
    const generation = this._generation;
    const lookup = await this._api.lookup(this._sessionId);
    if (generation === this._generation && !this.isDisposed) {
      this._apply(lookup);
    }
  }

  /** Stop the session from the tab's toolbar; the tab stays, offering a new Firefox. */
  async stop(): Promise<void> {
    const id = this._sessionId;
    if (!id) {
      return;
    }
    this._begin();
    await this._api.cleanup(cleanupBody(id)).catch(() => undefined);
    this._showEnded({
      title: 'You stopped this Firefox',
      detail: 'The session was shut down and its profile removed.'
    });
  }

  /** Load the Xpra client again (it reconnects to the same Firefox). */
  reloadFrame(): void {
    if (this._frame && this._session) {
      this._frame.src = this._session.url;
    }
  }

  /** Stop watching the session and forget it, then end it on the server (tab closing). */
  shutdown(): Promise<unknown> {
    const id = this._sessionId;
    this._begin();
    if (!id) {
      return Promise.resolve();
    }
    return this._api.cleanup(cleanupBody(id)).catch(error => {
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

  protected onAfterShow(msg: Message): void {
    void this._poll?.refresh();
  }

  /** Start a new action: cancel timers, polls and answers of the previous one. */
  private _begin(): number {
    this._generation += 1;
    this._stopTimer();
    this._poll?.dispose();
    this._poll = null;
    return this._generation;
  }

  private _startPolling(): void {
    if (this._poll || (this._state === 'ended' && this._session?.state !== 'stopping')) {
      return;
    }
    const generation = this._generation;
    this._poll = new Poll({
      name: `ffsystemd:status:${this._sessionId}`,
      frequency: { interval: STATUS_INTERVAL_MS, backoff: false },
      standby: () => !this.isVisible || 'when-hidden',
      factory: async () => {
        if (generation !== this._generation) {
          return;
        }
        await this.check();
      }
    });
  }

  /** Show what a lookup says: the Xpra client, still starting, or why the session ended. */
  private _apply(lookup: Lookup): void {
    switch (lookup.kind) {
      case 'alive':
        this._session = lookup.session;
        if (lookup.session.state === 'running') {
          this._showFrame(lookup.session);
        } else if (this._state !== 'starting') {
          this._showStarting(true);
        }
        break;
      case 'stopping':
        this._session = lookup.session;
        this._showEnded(endedText(lookup.session), true);
        break;
      case 'ended':
        this._session = lookup.session ?? this._session;
        this._showEnded(endedText(lookup.session));
        break;
      case 'unknown':
        // A passing error (server busy or restarting): keep what is shown, ask again later.
        break;
    }
  }

  private _showStarting(attaching: boolean): void {
    this._stopTimer();
    const started = Date.now();
    const text = document.createElement('div');
    text.className = 'jp-FFSystemd-statusText';
    const update = () => {
      text.textContent = startingText(Date.now() - started, attaching);
    };
    update();
    this._timer = window.setInterval(update, 1000);
    const box = element('div', 'jp-FFSystemd-status');
    box.setAttribute('role', 'status');
    box.append(element('div', 'jp-FFSystemd-spinner'), text);
    this._render('starting', box);
  }

  private _showFrame(session: ISession): void {
    this._stopTimer();
    if (this._frame && this._state === 'running') {
      return;
    }
    const frame = document.createElement('iframe');
    frame.className = 'jp-FFSystemd-frame';
    frame.title = 'Firefox';
    frame.src = session.url;
    // An opaque origin for Xpra's client (no allow-same-origin): whatever runs in it cannot use
    // this page's Jupyter credentials or reach into JupyterLab. The server's sandbox policy
    // says the same; this covers browsers that ignore it. No popups, forms or top navigation.
    frame.setAttribute('sandbox', 'allow-scripts');
    frame.setAttribute('allow', 'clipboard-read; clipboard-write; fullscreen');
    frame.referrerPolicy = 'no-referrer';
    frame.setAttribute('scrolling', 'no');
    this._render('running', frame);
    this._frame = frame;
  }

  private _showError(failure: ILaunchFailure): void {
    this._begin();
    const box = element('div', 'jp-FFSystemd-error');
    box.setAttribute('role', 'alert');
    box.append(element('h2', 'jp-FFSystemd-title', failure.title));
    box.append(element('p', 'jp-FFSystemd-message', failure.message));
    if (failure.step) {
      box.append(element('p', 'jp-FFSystemd-step', `Failed step: ${failure.step}`));
    }
    if (failure.logTail) {
      const details = element('details', 'jp-FFSystemd-log');
      details.append(element('summary', '', 'Xpra log (last lines)'));
      details.append(element('pre', '', failure.logTail));
      box.append(details);
    }
    const retry = button('Retry', 'jp-FFSystemd-retry', () => void this._retry());
    box.append(retry);
    this._render('error', box);
  }

  private _showEnded(text: IEndedText, stillStopping = false): void {
    this._stopTimer();
    if (!stillStopping) {
      this._poll?.dispose();
      this._poll = null;
    }
    const key = `${text.title}\n${text.detail}`;
    if (this._state === 'ended' && this._endedKey === key) {
      return;
    }
    this._endedKey = key;
    const box = element('div', 'jp-FFSystemd-ended');
    box.setAttribute('role', 'status');
    box.append(element('h2', 'jp-FFSystemd-title', text.title));
    box.append(element('p', 'jp-FFSystemd-message', text.detail));
    box.append(button('Start a new Firefox', 'jp-FFSystemd-restart', () => void this.launch()));
    this._render('ended', box);
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
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
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
  private _startUrl: () => string;
  private _state: PanelState = 'starting';
  private _sessionId: string | null = null;
  private _session: ISession | null = null;
  private _frame: HTMLIFrameElement | null = null;
  private _poll: Poll | null = null;
  private _timer: number | null = null;
  private _generation = 0;
  private _endedKey = '';
  private _retry: () => Promise<void> = () => this.launch();
  private _changed = new Signal<this, void>(this);
  private _frameFocused = new Signal<this, void>(this);
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(label: string, className: string, onClick: () => void): HTMLButtonElement {
  const node = element('button', `jp-Button jp-mod-styled jp-mod-accept ${className}`, label);
  node.type = 'button';
  node.addEventListener('click', onClick);
  return node;
}

/**
 * The "Firefox" section of JupyterLab's running-sessions panel: a view of the page's session
 * store (src/store.ts), which does the polling.
 */
import { IRunningSessions } from '@jupyterlab/running';
import { ISignal, Signal } from '@lumino/signaling';

import { firefoxIcon } from './icon';
import {
  cleanupBody,
  ISession,
  ITrans,
  sessionDetail,
  sessionLabel,
  sessionTitle,
  untranslated
} from './model';
import { SessionStore } from './store';

export namespace FirefoxRunningManager {
  export interface IOptions {
    store: SessionStore;
    /** Show a session: activate its tab, or open one attached to it. */
    open: (id: string) => void;
    trans?: ITrans;
  }
}

export class FirefoxRunningManager implements IRunningSessions.IManager {
  readonly name: string;
  readonly shutdownLabel: string;
  readonly shutdownAllLabel: string;
  readonly shutdownAllConfirmationText: string;

  constructor(options: FirefoxRunningManager.IOptions) {
    this._store = options.store;
    this._open = options.open;
    const trans = (this._trans = options.trans ?? untranslated);
    this.name = trans.__('Firefox');
    this.shutdownLabel = trans.__('Stop Firefox');
    this.shutdownAllLabel = trans.__('Stop All');
    this.shutdownAllConfirmationText = trans.__(
      'Stop all Firefox sessions? Their windows close and their profiles are removed.'
    );
    this._store.changed.connect(this._onChanged, this);
  }

  /** Emitted when the store's list changed (JupyterLab's panel re-reads it when shown). */
  get runningChanged(): ISignal<this, void> {
    return this._runningChanged;
  }

  running(): IRunningSessions.IRunningItem[] {
    return this._store.sessions.map(session => this._item(session));
  }

  refreshRunning(): void {
    void this._store.refresh();
  }

  shutdownAll(): void {
    void this._store
      .cleanup(cleanupBody('all'))
      .catch(error => console.warn('ffsystemd: stopping all Firefox sessions failed', error));
  }

  dispose(): void {
    this._store.changed.disconnect(this._onChanged, this);
    Signal.clearData(this);
  }

  private _onChanged(): void {
    this._runningChanged.emit();
  }

  private _item(session: ISession): IRunningSessions.IRunningItem {
    const trans = this._trans;
    return {
      className: 'jp-FFSystemd-runningItem',
      context: session.id,
      icon: () => firefoxIcon,
      label: () => sessionLabel(session, trans),
      labelTitle: () => sessionTitle(session, trans),
      detail: () => sessionDetail(session, trans),
      open: () => this._open(session.id),
      shutdown: () => {
        void this._store
          .cleanup(cleanupBody(session.id))
          .catch(error => console.warn(`ffsystemd: stopping ${session.id} failed`, error));
      }
    };
  }

  private _store: SessionStore;
  private _open: (id: string) => void;
  private _trans: ITrans;
  private _runningChanged = new Signal<this, void>(this);
}

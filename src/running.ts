/**
 * The "Firefox" section of JupyterLab's running-sessions panel.
 */
import { IRunningSessions } from '@jupyterlab/running';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { FirefoxAPI } from './api';
import { firefoxIcon } from './icon';
import { cleanupBody, ISession, sessionDetail, sessionLabel, sessionTitle } from './model';

/** How often the list of sessions is refreshed while the page is visible. */
export const LIST_INTERVAL_MS = 10000;

export namespace FirefoxRunningManager {
  export interface IOptions {
    api: FirefoxAPI;
    /** Show a session: activate its tab, or open one attached to it. */
    open: (id: string) => void;
    /** Called after sessions were stopped from the panel (to update their tabs). */
    stopped: (ids: string[] | 'all') => void;
  }
}

export class FirefoxRunningManager implements IRunningSessions.IManager {
  readonly name = 'Firefox';
  readonly shutdownLabel = 'Stop Firefox';
  readonly shutdownAllLabel = 'Stop All';
  readonly shutdownAllConfirmationText =
    'Stop all Firefox sessions? Their windows close and their profiles are removed.';

  constructor(options: FirefoxRunningManager.IOptions) {
    this._api = options.api;
    this._open = options.open;
    this._stopped = options.stopped;
    this._poll = new Poll({
      name: 'ffsystemd:sessions',
      frequency: { interval: LIST_INTERVAL_MS, backoff: true, max: 5 * LIST_INTERVAL_MS },
      standby: 'when-hidden',
      factory: () => this._fetch()
    });
  }

  get runningChanged(): ISignal<this, void> {
    return this._runningChanged;
  }

  /** The sessions last fetched from the server. */
  get sessions(): ReadonlyArray<ISession> {
    return this._sessions;
  }

  running(): IRunningSessions.IRunningItem[] {
    return this._sessions.map(session => this._item(session));
  }

  refreshRunning(): void {
    void this._poll.refresh();
  }

  shutdownAll(): void {
    void this._api
      .cleanup(cleanupBody('all'))
      .catch(error => console.warn('ffsystemd: stopping all Firefox sessions failed', error))
      .then(() => {
        this._stopped('all');
        this.refreshRunning();
      });
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  private _item(session: ISession): IRunningSessions.IRunningItem {
    return {
      className: 'jp-FFSystemd-runningItem',
      context: session.id,
      icon: () => firefoxIcon,
      label: () => sessionLabel(session),
      labelTitle: () => sessionTitle(session),
      detail: () => sessionDetail(session),
      open: () => this._open(session.id),
      shutdown: () => {
        void this._api
          .cleanup(cleanupBody(session.id))
          .catch(error => console.warn(`ffsystemd: stopping ${session.id} failed`, error))
          .then(() => {
            this._stopped([session.id]);
            this.refreshRunning();
          });
      }
    };
  }

  private async _fetch(): Promise<void> {
    this._sessions = await this._api.list();
    // Emit on every answer: the panel ignores updates while it is hidden.
    this._runningChanged.emit();
  }

  private _api: FirefoxAPI;
  private _open: (id: string) => void;
  private _stopped: (ids: string[] | 'all') => void;
  private _poll: Poll;
  private _sessions: ISession[] = [];
  private _runningChanged = new Signal<this, void>(this);
}

/**
 * The page's one store of Firefox sessions: a single poll of `GET .../api/firefox` (the list)
 * whose answer every view reads — the Firefox tabs and the running-sessions panel — and one
 * `changed` signal they subscribe to, the way JupyterLab's terminal manager serves its views.
 * However many tabs are open, the page asks the server once per interval.
 *
 * The poll stands by while the page is hidden, backs off while the server does not answer,
 * asks every few seconds while a tab follows a live session (every ten otherwise) and every
 * second for a short while after a launch or a stop. No JupyterLab imports: it is unit-tested
 * with a fake source (src/store.test.ts).
 */
import { JSONExt, JSONValue } from '@lumino/coreutils';
import { IPoll, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { CleanupBody, ICleanupResult, isAlive, isFinal, ISession, Lookup } from './model';

/** How often the list is asked for while no tab follows a live session (the panel only). */
export const IDLE_INTERVAL_MS = 10000;
/** How often the list is asked for while a tab follows a live session. */
export const FOLLOW_INTERVAL_MS = 3000;
/** How often the list is asked for right after a launch or a stop ... */
export const BURST_INTERVAL_MS = 1000;
/** ... and for how long. */
export const BURST_MS = 10000;

/** What the store needs of the REST API (`FirefoxAPI` in the page, a fake in the tests). */
export interface ISessionSource {
  list(): Promise<ISession[]>;
  cleanup(body: CleanupBody): Promise<ICleanupResult>;
}

/** A tab's subscription to one session; `dispose()` ends it. */
export interface IFollowing {
  dispose(): void;
}

export namespace SessionStore {
  export interface IOptions {
    source: ISessionSource;
    /** When the poll stands by (Lumino `Poll` standby; default: while the page is hidden). */
    standby?: Poll.Standby | (() => boolean | Poll.Standby);
  }
}

export class SessionStore {
  constructor(options: SessionStore.IOptions) {
    this._source = options.source;
    this._poll = new Poll({
      name: 'ffsystemd:sessions',
      frequency: this._frequency(),
      standby: options.standby ?? 'when-hidden',
      factory: () => this._fetch()
    });
  }

  /** Emitted when the list of sessions (any field of any session) differs from the last one. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The sessions as last listed (plus those the page just launched or attached to). */
  get sessions(): ReadonlyArray<ISession> {
    return this._sessions;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** The poll's current frequency (for tests and diagnostics). */
  get frequency(): IPoll.Frequency {
    return this._poll.frequency;
  }

  /**
   * What the store knows of session `id`: alive, stopping, ended (listed as stopped/failed,
   * or no longer listed) — or `unknown` while no list asked for after the page learnt of
   * the session has answered yet (an older answer cannot say it is gone).
   */
  lookup(id: string): Lookup {
    const session = this._sessions.find(s => s.id === id);
    if (session) {
      if (isAlive(session)) {
        return { kind: 'alive', session };
      }
      return isFinal(session) ? { kind: 'ended', session } : { kind: 'stopping', session };
    }
    if (this._pins.has(id)) {
      return { kind: 'unknown', status: 0, message: 'not listed yet' };
    }
    return { kind: 'ended', session: null };
  }

  /**
   * Put a session the page just got from the server (a launch's answer, a look-up) into the
   * store now, so the views show it before the next list; a list asked for before this call
   * does not remove it.
   */
  track(session: ISession): void {
    if (this._disposed) {
      return;
    }
    this._pins.set(session.id, this._fetches);
    const next = this._sessions.filter(s => s.id !== session.id);
    const at = this._sessions.findIndex(s => s.id === session.id);
    next.splice(at < 0 ? next.length : at, 0, session);
    this._replace(next);
  }

  /**
   * Call `onChange` with the store's `lookup(id)` whenever it changes (not on every list),
   * until the returned subscription is disposed. While any tab follows a session the list is
   * asked for every FOLLOW_INTERVAL_MS.
   */
  follow(id: string, onChange: (lookup: Lookup) => void): IFollowing {
    let last = this.lookup(id);
    const slot = (): void => {
      const now = this.lookup(id);
      if (!JSONExt.deepEqual(now as unknown as JSONValue, last as unknown as JSONValue)) {
        last = now;
        onChange(now);
      }
    };
    const token = {};
    this._followers.add(token);
    this._changed.connect(slot);
    this._retune();
    return {
      dispose: () => {
        if (this._followers.delete(token)) {
          this._changed.disconnect(slot);
          this._retune();
        }
      }
    };
  }

  /**
   * Ask for the list now; resolves once an answer to a request started no earlier than this
   * call is in (or the poll stood by). A request already under way is not doubled: the next
   * one starts when it ends, shared by every caller meanwhile.
   */
  refresh(): Promise<void> {
    if (this._disposed) {
      return Promise.resolve();
    }
    if (this._inFlight) {
      if (!this._queued) {
        this._queued = this._inFlight.catch(() => undefined).then(() => this._refreshNow());
      }
      return this._queued;
    }
    return this._refreshNow();
  }

  /** Poll every BURST_INTERVAL_MS for BURST_MS from now (a launch or stop changes the list). */
  burst(): void {
    this._burstUntil = Date.now() + BURST_MS;
    this._retune();
  }

  /** Stop sessions on the server, then refresh the list quickly (their tabs learn it from it). */
  async cleanup(body: CleanupBody): Promise<ICleanupResult> {
    try {
      return await this._source.cleanup(body);
    } finally {
      this.burst();
      void this.refresh();
    }
  }

  /** Stop polling and drop every subscriber. */
  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._poll.dispose();
    this._followers.clear();
    Signal.clearData(this);
  }

  private async _refreshNow(): Promise<void> {
    this._queued = null;
    if (this._disposed) {
      return;
    }
    this._poll.frequency = this._frequency();
    await this._poll.refresh();
    await this._poll.tick.catch(() => undefined);
  }

  /** The poll's factory: one request at a time. */
  private _fetch(): Promise<void> {
    if (!this._inFlight) {
      this._fetches += 1;
      const started = this._fetches;
      this._inFlight = this._source
        .list()
        .then(list => this._receive(list, started))
        .finally(() => {
          this._inFlight = null;
          // Before the poll schedules its next tick, which reads the frequency.
          this._poll.frequency = this._frequency();
        });
    }
    return this._inFlight;
  }

  /** A list arrived (request number `started`): keep pinned sessions it could not know of. */
  private _receive(list: ISession[], started: number): void {
    if (this._disposed) {
      return;
    }
    const next = [...list];
    for (const [id, pinnedAt] of this._pins) {
      if (started > pinnedAt) {
        this._pins.delete(id); // asked for after the pin: this answer is the truth
        continue;
      }
      const known = this._sessions.find(s => s.id === id);
      if (known && !next.some(s => s.id === id)) {
        next.push(known);
      }
    }
    this._replace(next);
  }

  private _replace(next: ISession[]): void {
    if (JSONExt.deepEqual(next as unknown as JSONValue, this._sessions as unknown as JSONValue)) {
      return;
    }
    this._sessions = next;
    this._changed.emit();
  }

  private _frequency(): IPoll.Frequency {
    const interval =
      Date.now() < this._burstUntil
        ? BURST_INTERVAL_MS
        : this._followers.size > 0
          ? FOLLOW_INTERVAL_MS
          : IDLE_INTERVAL_MS;
    // A server that does not answer is asked less and less often, up to five intervals.
    return { interval, backoff: true, max: 5 * interval };
  }

  /** Apply a shorter interval at once (a longer one applies from the next tick). */
  private _retune(): void {
    if (this._disposed) {
      return;
    }
    const frequency = this._frequency();
    this._poll.frequency = frequency;
    const state = this._poll.state;
    // Not while a request is under way, before the first one, or while backing off.
    const waiting =
      !this._inFlight && !['constructed', 'started', 'rejected'].includes(state.phase);
    if (waiting && frequency.interval < state.interval) {
      void this._poll.schedule({ interval: frequency.interval });
    }
  }

  private _source: ISessionSource;
  private _poll: Poll;
  private _sessions: ISession[] = [];
  /** Sessions tracked before list request number N (the value) started. */
  private _pins = new Map<string, number>();
  private _followers = new Set<object>();
  private _fetches = 0;
  private _inFlight: Promise<void> | null = null;
  private _queued: Promise<void> | null = null;
  private _burstUntil = 0;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}

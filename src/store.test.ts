import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { CleanupBody, ICleanupResult, ISession, Lookup, startFailure } from './model';
import {
  BURST_INTERVAL_MS,
  BURST_MS,
  FOLLOW_INTERVAL_MS,
  IDLE_INTERVAL_MS,
  ISessionSource,
  SessionStore
} from './store';

function session(id: string, overrides: Partial<ISession> = {}): ISession {
  return {
    id,
    unit: `app-ffsystemd-firefox-${id}.scope`,
    state: 'running',
    sub_state: 'running',
    result: null,
    message: null,
    main_pid: 4242,
    created: '2025-01-02T03:04:05Z',
    url: `/firefox-launcher/session/${id}/`,
    start_url: 'about:blank',
    memory_current: 1000,
    memory_max: 2000,
    tasks_current: 4,
    tasks_max: 512,
    cpu_quota: null,
    cpu_usage_nsec: 1,
    last_activity: null,
    connections: 1,
    adopted: false,
    server_id: null,
    step: null,
    log_tail: null,
    ...overrides
  };
}

const A = 'aaaaaaaaaaaa';
const B = 'bbbbbbbbbbbb';
const C = 'cccccccccccc';

/** The server as the store sees it: a list it answers, counted; a gate to hold an answer. */
class FakeSource implements ISessionSource {
  sessions: ISession[] = [];
  lists = 0;
  failing = false;
  cleanups: CleanupBody[] = [];
  private _gate: Promise<void> | null = null;
  private _open: (() => void) | null = null;

  async list(): Promise<ISession[]> {
    this.lists += 1;
    const answer = structuredClone(this.sessions);
    const failing = this.failing;
    if (this._gate) {
      await this._gate;
    }
    if (failing) {
      throw new Error('listing Firefox sessions failed: 502');
    }
    return answer;
  }

  async cleanup(body: CleanupBody): Promise<ICleanupResult> {
    this.cleanups.push(body);
    const ids = 'id' in body ? [body.id] : 'ids' in body ? body.ids : this.sessions.map(s => s.id);
    this.sessions = this.sessions.filter(s => !ids.includes(s.id));
    return { stopped: ids, errors: {} };
  }

  /** Hold the answers of the next lists until `release()`. */
  hold(): void {
    this._gate = new Promise(resolve => (this._open = resolve));
  }

  release(): void {
    this._open?.();
    this._gate = null;
  }
}

/** Run the timers and promises due now (the poll chains zero-delay timers; the fake clock
 * runs those one millisecond later). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await vi.advanceTimersByTimeAsync(1);
  }
}

describe('SessionStore', () => {
  let source: FakeSource;
  let store: SessionStore;

  /** `store.refresh()`, with the fake clock running until it resolves. */
  async function refreshed(): Promise<void> {
    const done = store.refresh();
    await settle();
    await done;
  }

  beforeEach(async () => {
    vi.useFakeTimers();
    source = new FakeSource();
    source.sessions = [session(A), session(B)];
    store = new SessionStore({ source });
    await settle(); // the first list
  });

  afterEach(() => {
    store.dispose();
    vi.useRealTimers();
  });

  it('asks once per interval however many tabs follow', async () => {
    expect(source.lists).toBe(1);
    expect(store.sessions.map(s => s.id)).toEqual([A, B]);
    const seen: Lookup[] = [];
    const tabs = [A, B, A, C].map(id => store.follow(id, lookup => seen.push(lookup)));
    expect(store.frequency.interval).toBe(FOLLOW_INTERVAL_MS);
    await vi.advanceTimersByTimeAsync(3 * FOLLOW_INTERVAL_MS);
    expect(source.lists).toBe(4);
    // Every tab refreshing at once still makes one request.
    const all = Promise.all(tabs.map(() => store.refresh()));
    await settle();
    await all;
    expect(source.lists).toBe(5);
    expect(seen).toEqual([]); // nothing changed for anyone
    tabs.forEach(tab => tab.dispose());
    expect(store.frequency.interval).toBe(IDLE_INTERVAL_MS);
  });

  it('does not double a request already under way', async () => {
    source.hold();
    const first = store.refresh();
    await settle();
    expect(source.lists).toBe(2);
    const second = store.refresh();
    const third = store.refresh();
    await vi.advanceTimersByTimeAsync(100);
    expect(source.lists).toBe(2);
    source.release();
    await settle();
    await Promise.all([first, second, third]);
    // One more request, started after the others asked, shared by both.
    expect(source.lists).toBe(3);
  });

  it('emits changed only when the list differs', async () => {
    const changed = vi.fn();
    store.changed.connect(changed);
    await refreshed();
    await refreshed();
    expect(changed).not.toHaveBeenCalled();
    source.sessions[0].memory_current = 1500;
    await refreshed();
    expect(changed).toHaveBeenCalledTimes(1);
    expect(store.sessions[0].memory_current).toBe(1500);
    await refreshed();
    expect(changed).toHaveBeenCalledTimes(1);
  });

  it('tells a tab that its session ended: listed as failed, then gone', async () => {
    const seen: Lookup[] = [];
    const tab = store.follow(A, lookup => seen.push(lookup));
    source.sessions[1].memory_current = 1; // another session's change is not this tab's
    await refreshed();
    expect(seen).toEqual([]);
    source.sessions[0] = session(A, { state: 'failed', result: 'oom-kill', memory_current: null });
    await refreshed();
    expect(seen).toHaveLength(1);
    expect(seen[0].kind).toBe('ended');
    expect(seen[0].kind === 'ended' && seen[0].session?.result).toBe('oom-kill');
    source.sessions = source.sessions.filter(s => s.id !== A);
    await refreshed();
    expect(seen[1]).toEqual({ kind: 'ended', session: null });
    tab.dispose();
  });

  it('tells a tab whose session was starting that its launch failed, with step and log', async () => {
    const starting = session(C, { state: 'starting', main_pid: null, memory_current: null });
    store.track(starting); // the launch's 202 answer
    const seen: Lookup[] = [];
    store.follow(C, lookup => seen.push(lookup));
    source.sessions.push(structuredClone(starting));
    await refreshed();
    expect(seen).toEqual([]); // still starting: nothing new for the tab
    source.sessions[2] = session(C, {
      state: 'failed',
      main_pid: null,
      memory_current: null,
      message: "launch failed at step 'unit-start': job finished with result 'failed'",
      step: 'unit-start',
      log_tail: ['fake xpra: never started']
    });
    await refreshed();
    expect(seen.map(lookup => lookup.kind)).toEqual(['ended']);
    const ended = seen[0].kind === 'ended' ? seen[0].session : null;
    expect(ended?.step).toBe('unit-start');
    expect(ended?.log_tail).toEqual(['fake xpra: never started']);
    // What the tab's error box then shows (src/panel.ts: the `ended` lookup of a start failure).
    expect(startFailure(ended)).toMatchObject({
      title: 'Firefox failed to start while starting the systemd scope',
      step: 'unit-start',
      logTail: 'fake xpra: never started'
    });
  });

  it('passes on stopping before the end', async () => {
    const seen: string[] = [];
    store.follow(B, lookup => seen.push(lookup.kind));
    source.sessions[1] = session(B, { state: 'stopping' });
    await refreshed();
    source.sessions[1] = session(B, { state: 'stopped', result: 'success' });
    await refreshed();
    expect(seen).toEqual(['stopping', 'ended']);
  });

  it('keeps a just-launched session that a list asked for before the launch cannot know', async () => {
    source.hold();
    const old = store.refresh();
    await settle();
    // The launch answers while that list is under way.
    const launched = session(C);
    source.sessions.push(launched);
    store.track(launched);
    expect(store.lookup(C).kind).toBe('alive');
    const seen: Lookup[] = [];
    store.follow(C, lookup => seen.push(lookup));
    source.release();
    await old;
    expect(store.sessions.map(s => s.id)).toContain(C);
    expect(seen).toEqual([]);
    // A list asked for afterwards is the truth: the session is gone.
    source.sessions = source.sessions.filter(s => s.id !== C);
    await refreshed();
    expect(seen).toEqual([{ kind: 'ended', session: null }]);
  });

  it('shows a tracked session at once', () => {
    const changed = vi.fn();
    store.changed.connect(changed);
    store.track(session(C, { state: 'starting' }));
    expect(changed).toHaveBeenCalledTimes(1);
    expect(store.sessions.map(s => s.id)).toEqual([A, B, C]);
    store.track(session(C, { state: 'starting' }));
    expect(changed).toHaveBeenCalledTimes(1);
  });

  it('polls fast right after a stop, then slows down again', async () => {
    store.follow(A, () => undefined);
    await store.cleanup({ id: B });
    expect(source.cleanups).toEqual([{ id: B }]);
    expect(store.frequency.interval).toBe(BURST_INTERVAL_MS);
    await settle();
    expect(store.sessions.map(s => s.id)).toEqual([A]);
    const before = source.lists;
    await vi.advanceTimersByTimeAsync(BURST_MS);
    expect(source.lists - before).toBeGreaterThanOrEqual(BURST_MS / BURST_INTERVAL_MS - 1);
    await vi.advanceTimersByTimeAsync(2 * BURST_INTERVAL_MS);
    expect(store.frequency.interval).toBe(FOLLOW_INTERVAL_MS);
  });

  it('backs off while the server does not answer', async () => {
    source.failing = true;
    const before = source.lists;
    await vi.advanceTimersByTimeAsync(20 * IDLE_INTERVAL_MS);
    // At most one request per interval, fewer as it backs off (up to five intervals).
    const asked = source.lists - before;
    expect(asked).toBeGreaterThanOrEqual(4);
    expect(asked).toBeLessThan(20);
    expect(store.sessions.map(s => s.id)).toEqual([A, B]); // the last answer stays
  });

  it('stands by while the page is hidden', async () => {
    store.dispose();
    let hidden = true;
    source.lists = 0;
    store = new SessionStore({ source, standby: () => hidden });
    await vi.advanceTimersByTimeAsync(5 * IDLE_INTERVAL_MS);
    expect(source.lists).toBe(0);
    hidden = false;
    await vi.advanceTimersByTimeAsync(IDLE_INTERVAL_MS);
    expect(source.lists).toBe(1);
  });

  it('stops polling and calling its tabs once disposed', async () => {
    const seen = vi.fn();
    store.follow(A, seen);
    store.dispose();
    const before = source.lists;
    source.sessions = [];
    await vi.advanceTimersByTimeAsync(10 * IDLE_INTERVAL_MS);
    await refreshed();
    expect(source.lists).toBe(before);
    expect(seen).not.toHaveBeenCalled();
    expect(store.isDisposed).toBe(true);
  });

  it('stops calling a tab whose subscription is disposed', async () => {
    const seen = vi.fn();
    const tab = store.follow(A, seen);
    tab.dispose();
    tab.dispose();
    source.sessions = [];
    await refreshed();
    expect(seen).not.toHaveBeenCalled();
  });
});

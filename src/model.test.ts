import { describe, expect, it } from 'vitest';

import {
  classifyLookup,
  cleanupBody,
  describeLaunchFailure,
  endedText,
  formatBytes,
  formatMemory,
  isAlive,
  isFinal,
  isSessionId,
  isSessionJSON,
  ISession,
  launchBody,
  sessionDetail,
  sessionLabel,
  sessionTitle,
  startFailure,
  startingText,
  ITrans,
  untranslated
} from './model';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function session(overrides: Partial<ISession> = {}): ISession {
  return {
    id: '0123456789ab',
    unit: 'app-ffsystemd-firefox-0123456789ab.scope',
    state: 'running',
    sub_state: 'running',
    result: null,
    message: null,
    main_pid: 4242,
    created: '2025-01-02T03:04:05Z',
    url: '/user/ann/firefox-launcher/session/0123456789ab/',
    start_url: 'about:blank',
    memory_current: 312 * MiB,
    memory_max: 2 * GiB,
    tasks_current: 45,
    tasks_max: 1024,
    cpu_quota: null,
    cpu_usage_nsec: 123456,
    last_activity: '2025-01-02T03:05:00Z',
    connections: 1,
    adopted: false,
    server_id: 'srv-1',
    step: null,
    log_tail: null,
    ...overrides
  };
}

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [900, '900 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [312 * MiB, '312 MiB'],
    [1.5 * GiB, '1.5 GiB'],
    [2 * GiB, '2 GiB'],
    [9.96 * GiB, '10 GiB'],
    [1023.7 * MiB, '1 GiB'],
    [10.4 * GiB, '10 GiB']
  ])('%d bytes is "%s"', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('marks impossible values', () => {
    expect(formatBytes(-1)).toBe('?');
    expect(formatBytes(Number.NaN)).toBe('?');
  });
});

describe('formatMemory', () => {
  it('shows use against the limit', () => {
    expect(formatMemory(session())).toBe('312 MiB / 2 GiB');
  });

  it('shows a dash when systemd has no current value', () => {
    expect(formatMemory(session({ memory_current: null }))).toBe('— / 2 GiB');
  });

  it('says when there is no limit', () => {
    expect(formatMemory(session({ memory_max: null }))).toBe('312 MiB / no limit');
  });
});

describe('request bodies', () => {
  it('sends no url when the setting is empty or blank', () => {
    expect(launchBody('')).toEqual({});
    expect(launchBody('   ')).toEqual({});
    expect(launchBody(undefined)).toEqual({});
    expect(launchBody(null)).toEqual({});
  });

  it('sends the trimmed start page', () => {
    expect(launchBody(' https://example.org/ ')).toEqual({ url: 'https://example.org/' });
  });

  it('builds cleanup bodies for one, several and all sessions', () => {
    expect(cleanupBody('0123456789ab')).toEqual({ id: '0123456789ab' });
    expect(cleanupBody(['0123456789ab', 'ba9876543210'])).toEqual({
      ids: ['0123456789ab', 'ba9876543210']
    });
    expect(cleanupBody('all')).toEqual({ all: true });
    expect(() => cleanupBody([])).toThrow(/no session ids/);
  });
});

describe('session ids and JSON', () => {
  it('accepts only 12 lowercase hex digits', () => {
    expect(isSessionId('0123456789ab')).toBe(true);
    expect(isSessionId('0123456789AB')).toBe(false);
    expect(isSessionId('0123456789a')).toBe(false);
    expect(isSessionId('../../etc/xx')).toBe(false);
    expect(isSessionId(42)).toBe(false);
    expect(isSessionId(undefined)).toBe(false);
  });

  it('recognises session objects', () => {
    expect(isSessionJSON(session())).toBe(true);
    expect(isSessionJSON({ message: 'nope' })).toBe(false);
    expect(isSessionJSON(null)).toBe(false);
    expect(isSessionJSON({ ...session(), url: undefined })).toBe(false);
  });
});

describe('is the session alive', () => {
  it('is alive while starting or running', () => {
    expect(isAlive(session({ state: 'starting' }))).toBe(true);
    expect(isAlive(session({ state: 'running' }))).toBe(true);
  });

  it('is not alive when stopping, stopped, failed or gone', () => {
    expect(isAlive(session({ state: 'stopping' }))).toBe(false);
    expect(isAlive(session({ state: 'stopped' }))).toBe(false);
    expect(isAlive(session({ state: 'failed' }))).toBe(false);
    expect(isAlive(null)).toBe(false);
  });

  it('is final only when stopped, failed or gone', () => {
    expect(isFinal(session({ state: 'stopping' }))).toBe(false);
    expect(isFinal(session({ state: 'running' }))).toBe(false);
    expect(isFinal(session({ state: 'failed' }))).toBe(true);
    expect(isFinal(null)).toBe(true);
  });
});

describe('classifyLookup', () => {
  it('treats 404 as ended with no session', () => {
    expect(classifyLookup(404, { message: 'no such session' })).toEqual({
      kind: 'ended',
      session: null
    });
  });

  it('sorts 200 answers by state', () => {
    expect(classifyLookup(200, session()).kind).toBe('alive');
    expect(classifyLookup(200, session({ state: 'starting' })).kind).toBe('alive');
    expect(classifyLookup(200, session({ state: 'stopping' })).kind).toBe('stopping');
    const ended = classifyLookup(200, session({ state: 'failed', result: 'oom-kill' }));
    expect(ended.kind).toBe('ended');
    expect(ended.kind === 'ended' && ended.session?.result).toBe('oom-kill');
  });

  it('keeps other answers undecided, with the server message', () => {
    expect(classifyLookup(503, { message: 'no user manager' })).toEqual({
      kind: 'unknown',
      status: 503,
      message: 'no user manager'
    });
    expect(classifyLookup(0, null)).toEqual({
      kind: 'unknown',
      status: 0,
      message: 'the server answered 0'
    });
    expect(classifyLookup(200, { sessions: [] }).kind).toBe('unknown');
  });
});

describe('startFailure', () => {
  const failed = session({
    state: 'failed',
    main_pid: null,
    message: "launch failed at step 'xpra-ready': Xpra exited with status 3 before it was ready",
    step: 'xpra-ready',
    log_tail: ['xpra: starting', 'fake xpra: failing on purpose']
  });

  it('gives a launch that failed while starting the error box: step, message, log tail', () => {
    expect(startFailure(failed)).toEqual({
      title: 'Firefox failed to start while waiting for Xpra to answer',
      message: 'Xpra exited with status 3 before it was ready',
      step: 'xpra-ready',
      logTail: 'xpra: starting\nfake xpra: failing on purpose'
    });
  });

  it('keeps a message that does not repeat the step, and an empty log', () => {
    const failure = startFailure({
      ...failed,
      step: 'systemd',
      message: 'no systemd user manager on the bus',
      log_tail: []
    });
    expect(failure?.title).toBe('Firefox failed to start while talking to the systemd user manager');
    expect(failure?.message).toBe('no systemd user manager on the bus');
    expect(failure?.logTail).toBe('');
  });

  it('is null for every other session', () => {
    expect(startFailure(null)).toBeNull();
    expect(startFailure(session())).toBeNull();
    expect(startFailure(session({ state: 'starting' }))).toBeNull();
    // Failed after it ran (a crash, oom-kill): the ended view, not the launch error.
    expect(startFailure(session({ state: 'failed', result: 'oom-kill' }))).toBeNull();
  });
});

describe('describeLaunchFailure', () => {
  it('shows the failed step, the message and the log tail', () => {
    const failure = describeLaunchFailure(500, {
      message: 'Xpra did not answer within 30 s',
      reason: 'Internal Server Error',
      step: 'xpra-ready',
      log_tail: 'line 1\nline 2\n'
    });
    expect(failure).toEqual({
      title: 'Firefox failed to start while waiting for Xpra to answer',
      message: 'Xpra did not answer within 30 s',
      step: 'xpra-ready',
      logTail: 'line 1\nline 2'
    });
  });

  it('joins a log tail given as lines and names unknown steps as they are', () => {
    const failure = describeLaunchFailure(500, { message: 'boom', step: 'warp', log_tail: ['a', 'b'] });
    expect(failure.title).toBe('Firefox failed to start while warp');
    expect(failure.logTail).toBe('a\nb');
  });

  it('names the limit and the missing user manager', () => {
    expect(describeLaunchFailure(429, { message: 'max_sessions (4) reached' })).toMatchObject({
      title: 'Too many Firefox sessions are running',
      message: 'max_sessions (4) reached',
      step: null,
      logTail: ''
    });
    expect(describeLaunchFailure(503, { message: 'no bus' }).title).toBe(
      'Firefox cannot start on this server right now'
    );
  });

  it('copes with no body or no connection', () => {
    expect(describeLaunchFailure(502, null).message).toBe('The server answered 502.');
    expect(describeLaunchFailure(0, { message: 'Failed to fetch' }).title).toBe(
      'Cannot reach the Jupyter server'
    );
  });
});

describe('endedText', () => {
  it('explains an out-of-memory kill with the limit', () => {
    const text = endedText(session({ state: 'failed', result: 'oom-kill' }));
    expect(text.title).toBe('Firefox ran out of memory');
    expect(text.detail).toContain('memory limit of 2 GiB');
    expect(text.detail).toContain('oom-kill');
  });

  it('passes on the server message of a normal end', () => {
    const text = endedText(
      session({
        state: 'stopped',
        result: 'success',
        message: 'Xpra exited normally (Firefox was closed)'
      })
    );
    expect(text).toEqual({
      title: 'Firefox was closed',
      detail: 'Xpra exited normally (Firefox was closed).'
    });
  });

  it('tells a kill by signal and a failure with its result', () => {
    expect(
      endedText(session({ state: 'failed', result: 'signal', message: 'Xpra was killed by SIGKILL' }))
    ).toEqual({
      title: 'Firefox was killed',
      detail: 'The session was ended by a signal. Xpra was killed by SIGKILL.'
    });
    const failed = endedText(session({ state: 'failed', result: 'exit-code' }));
    expect(failed.title).toBe('Firefox stopped with an error');
    expect(failed.detail).toContain('(exit-code)');
  });

  it('says when the server no longer knows the session', () => {
    expect(endedText(null).title).toBe('This Firefox session has ended');
    expect(endedText(null).detail).toMatch(/no longer has this session/);
  });

  it('says a stopping session is shutting down', () => {
    expect(endedText(session({ state: 'stopping' })).title).toBe('Firefox is shutting down');
  });

  it('keeps an unknown result visible', () => {
    expect(endedText(session({ state: 'stopped', result: 'watchdog' }))).toEqual({
      title: 'Firefox stopped',
      detail: 'The session ended (watchdog).'
    });
  });
});

describe('labels', () => {
  it('names a session by its start page, or by its id for a blank page', () => {
    expect(sessionLabel(session({ start_url: 'https://jupyter.org/' }))).toBe(
      'Firefox https://jupyter.org/'
    );
    expect(sessionLabel(session())).toBe('Firefox 0123456789ab');
    expect(sessionLabel(session({ start_url: null }))).toBe('Firefox 0123456789ab');
  });

  it('shows memory while alive and how it ended afterwards', () => {
    expect(sessionDetail(session())).toBe('312 MiB / 2 GiB');
    expect(sessionDetail(session({ state: 'starting', memory_current: null }))).toBe('— / 2 GiB');
    expect(sessionDetail(session({ state: 'failed', result: 'oom-kill' }))).toBe('failed: oom-kill');
    expect(sessionDetail(session({ state: 'stopped', result: 'success' }))).toBe('stopped');
    expect(sessionDetail(session({ state: 'stopping', result: null }))).toBe('stopping');
  });

  it('puts state, memory and tasks in the hover text', () => {
    const title = sessionTitle(session({ state: 'failed', result: 'oom-kill' }));
    expect(title.split('\n')).toEqual([
      'Firefox session 0123456789ab',
      'State: failed (oom-kill)',
      'Memory: 312 MiB / 2 GiB',
      'Tasks: 45 / 1024',
      'Start page: about:blank',
      'Started: 2025-01-02T03:04:05Z'
    ]);
  });

  it('counts whole seconds while starting', () => {
    expect(startingText(0)).toBe('Starting Firefox… 0 s');
    expect(startingText(7999)).toBe('Starting Firefox… 7 s');
    expect(startingText(2500, true)).toBe('Reconnecting to Firefox… 2 s');
    expect(startingText(-50)).toBe('Starting Firefox… 0 s');
  });
});

describe('translation', () => {
  // A bundle that marks what went through it and fills placeholders as JupyterLab's does.
  const marked: ITrans = { __: (msgid, ...args) => `«${untranslated.__(msgid, ...args)}»` };

  it('fills numbered placeholders without a translator', () => {
    expect(untranslated.__('%2 and %1, %3', 'a', 'b')).toBe('b and a, %3');
  });

  it('sends every text a user reads through the bundle', () => {
    expect(endedText(null, marked).title).toBe('«This Firefox session has ended»');
    expect(describeLaunchFailure(500, { message: 'boom', step: 'spawn' }, marked).title).toBe(
      '«Firefox failed to start while «starting the session process»»'
    );
    expect(startingText(7000, true, marked)).toBe('«Reconnecting to Firefox… 7 s»');
    expect(sessionLabel(session(), marked)).toBe('«Firefox 0123456789ab»');
    expect(sessionTitle(session(), marked).split('\n')[0]).toBe('«Firefox session 0123456789ab»');
    // The server's own message is passed on as it is, after our sentence.
    const ended = endedText(session({ state: 'failed', result: 'signal', message: 'Killed' }), marked);
    expect(ended.detail).toBe('«The session was ended by a signal.» Killed.');
  });
});

/**
 * Pure logic of the Firefox front end: the session JSON of the REST API, request bodies,
 * "is this session alive", and the texts a user reads (through a translation bundle). No
 * JupyterLab imports, so it is unit-tested on its own (src/model.test.ts).
 */

/**
 * The part of a JupyterLab `TranslationBundle` the texts use: `__(msgid, ...args)`, where
 * `%1`, `%2`, ... in the message stand for the arguments.
 */
export interface ITrans {
  __(msgid: string, ...args: unknown[]): string;
}

/** No translation: the English message with its `%N` placeholders filled in. */
export const untranslated: ITrans = {
  __: (msgid: string, ...args: unknown[]): string =>
    msgid.replace(/%(\d+)/g, (whole, n: string) =>
      Number(n) >= 1 && Number(n) <= args.length ? String(args[Number(n) - 1]) : whole
    )
};

/** Session states reported by `GET /firefox-launcher/api/firefox`. */
export type SessionState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** One session as the server renders it (fields are null where systemd has no value). */
export interface ISession {
  id: string;
  unit: string;
  state: SessionState;
  sub_state: string | null;
  result: string | null;
  message: string | null;
  main_pid: number | null;
  created: string | null;
  /** The session's Xpra HTML5 client, already absolute under the server's base_url. */
  url: string;
  start_url: string | null;
  memory_current: number | null;
  memory_max: number | null;
  tasks_current: number | null;
  tasks_max: number | null;
  cpu_quota: number | null;
  cpu_usage_nsec: number | null;
  /** When proxied traffic of the session last passed (ISO 8601 UTC); null before any. */
  last_activity: string | null;
  /** Open websocket connections to the session's Xpra (idle culling waits while any is open). */
  connections: number;
  /** True when this server re-adopted the session after a restart instead of launching it. */
  adopted: boolean;
  /** The Jupyter server that owns the session (null when it has no server id). */
  server_id: string | null;
  /** The launch step that failed, for a session that failed while starting (else null). */
  step: string | null;
  /** The Xpra log's last lines then (bounded), for a session that failed while starting. */
  log_tail: string[] | null;
}

/** The JSON error body of the REST API (launch failures add `step` and `log_tail`). */
export interface IErrorBody {
  message?: string;
  reason?: string | null;
  step?: string;
  log_tail?: string | string[];
}

/** What the tab shows when a launch (or re-attach) fails. */
export interface ILaunchFailure {
  title: string;
  message: string;
  step: string | null;
  logTail: string;
}

/** What the tab shows when its session is gone. */
export interface IEndedText {
  title: string;
  detail: string;
}

/** Answer of `POST .../api/cleanup`. */
export interface ICleanupResult {
  stopped: string[];
  errors: Record<string, string>;
}

/** Body of `POST .../api/firefox`. */
export interface ILaunchBody {
  url?: string;
  /** false: answer 202 with the session still starting (its page can load meanwhile). */
  wait?: boolean;
  /** The size the tab's client will ask for (X pixels): set before it connects (src/screen.ts). */
  screen?: [number, number];
}

/** Body of `POST .../api/cleanup`. */
export type CleanupBody = { id: string } | { ids: string[] } | { all: true };

/** Result of asking the server about one session (`GET ?id=`). */
export type Lookup =
  | { kind: 'alive'; session: ISession }
  | { kind: 'stopping'; session: ISession }
  | { kind: 'ended'; session: ISession | null }
  | { kind: 'unknown'; status: number; message: string };

const SESSION_ID = /^[0-9a-f]{12}$/;

/** Whether `id` has the form of a server-made session id (12 lowercase hex digits). */
export function isSessionId(id: unknown): id is string {
  return typeof id === 'string' && SESSION_ID.test(id);
}

/** Starting or running: the tab shows (or will show) the Xpra client. */
export function isAlive(session: Pick<ISession, 'state'> | null | undefined): boolean {
  return !!session && (session.state === 'starting' || session.state === 'running');
}

/** Stopped or failed for good (a stopping session may still report its final result). */
export function isFinal(session: Pick<ISession, 'state'> | null | undefined): boolean {
  return !session || session.state === 'stopped' || session.state === 'failed';
}

/** Sort a `GET ?id=` answer into alive / stopping / ended / unknown (try again later). */
export function classifyLookup(status: number, body: unknown): Lookup {
  if (status === 404) {
    return { kind: 'ended', session: null };
  }
  if (status === 200 && isSessionJSON(body)) {
    if (isAlive(body)) {
      return { kind: 'alive', session: body };
    }
    return isFinal(body) ? { kind: 'ended', session: body } : { kind: 'stopping', session: body };
  }
  const message = errorMessage(body) ?? `the server answered ${status}`;
  return { kind: 'unknown', status, message };
}

/** Whether `value` looks like a session object of the REST API. */
export function isSessionJSON(value: unknown): value is ISession {
  if (!value || typeof value !== 'object') {
    return false;
  }
  const v = value as Record<string, unknown>;
  return isSessionId(v.id) && typeof v.state === 'string' && typeof v.url === 'string';
}

/** The launch body: `{url}` when the setting names a start page, else `{}` (server default). */
export function launchBody(defaultStartUrl: string | null | undefined): ILaunchBody {
  const url = (defaultStartUrl ?? '').trim();
  return url ? { url } : {};
}

/** The cleanup body for one session, several, or all of them. */
export function cleanupBody(which: string | string[] | 'all'): CleanupBody {
  if (which === 'all') {
    return { all: true };
  }
  if (Array.isArray(which)) {
    if (which.length === 0) {
      throw new Error('cleanupBody: no session ids given');
    }
    return { ids: [...which] };
  }
  return { id: which };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * Bytes in binary units, as a person reads them: "312 MiB", "1.5 GiB", "2 GiB", "900 B".
 * One decimal below 10 units (dropped when it is .0), whole numbers from 10 up.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) {
    return '?';
  }
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) {
    return `${Math.round(value)} B`;
  }
  let text = value < 10 ? (Math.round(value * 10) / 10).toFixed(1) : String(Math.round(value));
  if (text === '1024' && unit < UNITS.length - 1) {
    // 1023.6 MiB rounds up to the next unit.
    return `1 ${UNITS[unit + 1]}`;
  }
  if (text.endsWith('.0')) {
    text = text.slice(0, -2);
  }
  return `${text} ${UNITS[unit]}`;
}

/** Memory use against the limit: "312 MiB / 2 GiB", "— / 2 GiB", "312 MiB / no limit". */
export function formatMemory(
  session: Pick<ISession, 'memory_current' | 'memory_max'>,
  trans: ITrans = untranslated
): string {
  const current = session.memory_current === null ? '—' : formatBytes(session.memory_current);
  const limit =
    session.memory_max === null ? trans.__('no limit') : formatBytes(session.memory_max);
  return `${current} / ${limit}`;
}

/** The running panel's label: "Firefox <start page>", or the id for a blank start page. */
export function sessionLabel(
  session: Pick<ISession, 'id' | 'start_url'>,
  trans: ITrans = untranslated
): string {
  const page =
    session.start_url && session.start_url !== 'about:blank' ? session.start_url : session.id;
  return trans.__('Firefox %1', page);
}

/** The running panel's detail column: memory while alive, else how it ended. */
export function sessionDetail(
  session: Pick<ISession, 'state' | 'result' | 'memory_current' | 'memory_max'>,
  trans: ITrans = untranslated
): string {
  if (isAlive(session)) {
    return formatMemory(session, trans);
  }
  const why = session.result && session.result !== 'success' ? `: ${session.result}` : '';
  return `${session.state}${why}`;
}

/** The running panel's hover text: id, state, memory, tasks, start time. */
export function sessionTitle(session: ISession, trans: ITrans = untranslated): string {
  const state = session.result ? `${session.state} (${session.result})` : session.state;
  const lines = [
    trans.__('Firefox session %1', session.id),
    trans.__('State: %1', state),
    trans.__('Memory: %1', formatMemory(session, trans))
  ];
  if (session.tasks_current !== null || session.tasks_max !== null) {
    const current = session.tasks_current ?? '—';
    const limit = session.tasks_max ?? trans.__('no limit');
    lines.push(trans.__('Tasks: %1 / %2', current, limit));
  }
  if (session.start_url) {
    lines.push(trans.__('Start page: %1', session.start_url));
  }
  if (session.created) {
    lines.push(trans.__('Started: %1', session.created));
  }
  return lines.join('\n');
}

/** "Starting Firefox… 7 s" */
export function startingText(
  elapsedMs: number,
  attaching = false,
  trans: ITrans = untranslated
): string {
  const seconds = Math.max(0, Math.floor(elapsedMs / 1000));
  return attaching
    ? trans.__('Reconnecting to Firefox… %1 s', seconds)
    : trans.__('Starting Firefox… %1 s', seconds);
}

/** The `message` of an error body, if it has one. */
export function errorMessage(body: unknown): string | null {
  if (body && typeof body === 'object') {
    const message = (body as IErrorBody).message;
    if (typeof message === 'string' && message.trim()) {
      return message.trim();
    }
  }
  return null;
}

/** What a failed launch step was doing, as the error title says it. */
function stepText(step: string, trans: ITrans): string {
  switch (step) {
    case 'systemd':
      return trans.__('talking to the systemd user manager');
    case 'directories':
      return trans.__('creating the session directory');
    case 'spawn':
      return trans.__('starting the session process');
    case 'unit-start':
      return trans.__('starting the systemd scope');
    case 'xpra-start':
      return trans.__('starting Xpra');
    case 'xpra-ready':
      return trans.__('waiting for Xpra to answer');
    default:
      return step;
  }
}

/** Turn a failed launch (HTTP status + JSON error body) into what the tab shows. */
export function describeLaunchFailure(
  status: number,
  body: unknown,
  trans: ITrans = untranslated
): ILaunchFailure {
  const b = (body && typeof body === 'object' ? body : {}) as IErrorBody;
  const message =
    errorMessage(b) ?? (status ? trans.__('The server answered %1.', status) : trans.__('No answer.'));
  const step = typeof b.step === 'string' && b.step ? b.step : null;
  const tail = Array.isArray(b.log_tail)
    ? b.log_tail.join('\n')
    : typeof b.log_tail === 'string'
      ? b.log_tail
      : '';
  let title: string;
  if (status === 0) {
    title = trans.__('Cannot reach the Jupyter server');
  } else if (status === 429) {
    title = trans.__('Too many Firefox sessions are running');
  } else if (status === 503) {
    title = trans.__('Firefox cannot start on this server right now');
  } else if (status === 400) {
    title = trans.__('The launch request was refused');
  } else if (status === 403) {
    title = trans.__('Not allowed to start Firefox');
  } else if (step) {
    title = trans.__('Firefox failed to start while %1', stepText(step, trans));
  } else {
    title = trans.__('Firefox failed to start');
  }
  return { title, message, step, logTail: tail.trimEnd() };
}

/**
 * A session that failed while starting (its record carries the failed `step` and the Xpra
 * log's tail, as a waited-for launch's error answer does) as the tab's error box shows it;
 * null for any other session.
 */
export function startFailure(
  session: Pick<ISession, 'state' | 'message' | 'step' | 'log_tail'> | null,
  trans: ITrans = untranslated
): ILaunchFailure | null {
  if (!session || session.state !== 'failed' || !session.step) {
    return null;
  }
  // The record's message starts with what the title already says.
  const prefix = `launch failed at step '${session.step}': `;
  const message = (session.message ?? '').startsWith(prefix)
    ? (session.message ?? '').slice(prefix.length)
    : session.message;
  return describeLaunchFailure(
    500,
    { message: message ?? undefined, step: session.step, log_tail: session.log_tail ?? [] },
    trans
  );
}

/** Why the tab's session ended, from its last known state (null: the server forgot it). */
export function endedText(session: ISession | null, trans: ITrans = untranslated): IEndedText {
  if (!session) {
    return {
      title: trans.__('This Firefox session has ended'),
      detail: trans.__(
        'The server no longer has this session: it was shut down from another tab or the ' +
          'running-sessions panel, or the Jupyter server restarted.'
      )
    };
  }
  const result = session.result;
  // The server's own message (not translated) follows our sentence.
  const extra = session.message ? ` ${withStop(session.message)}` : '';
  const code = result && result !== 'success' && result !== 'signal' ? ` (${result})` : '';
  if (session.state === 'stopping') {
    return {
      title: trans.__('Firefox is shutting down'),
      detail: trans.__('The session is stopping.') + extra
    };
  }
  if (result === 'oom-kill') {
    const detail =
      session.memory_max === null
        ? trans.__('The session reached its memory limit and the system stopped it (oom-kill).')
        : trans.__(
            'The session reached its memory limit of %1 and the system stopped it (oom-kill).',
            formatBytes(session.memory_max)
          );
    return { title: trans.__('Firefox ran out of memory'), detail: detail + extra };
  }
  if (result === 'signal' || result === 'core-dump') {
    return {
      title: trans.__('Firefox was killed'),
      detail: trans.__('The session was ended by a signal%1.', code) + extra
    };
  }
  if (result === 'timeout') {
    return {
      title: trans.__('Firefox timed out'),
      detail: trans.__('The session did not respond in time%1.', code) + extra
    };
  }
  if (result === 'exit-code' || session.state === 'failed') {
    return {
      title: trans.__('Firefox stopped with an error'),
      detail: trans.__('The session failed%1.', code) + extra
    };
  }
  if (!result || result === 'success') {
    return {
      title: trans.__('Firefox was closed'),
      detail: session.message ? withStop(session.message) : trans.__('The session ended normally.')
    };
  }
  return {
    title: trans.__('Firefox stopped'),
    detail: trans.__('The session ended%1.', code) + extra
  };
}

function withStop(text: string): string {
  const t = text.trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

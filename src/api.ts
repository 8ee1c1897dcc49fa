/**
 * The REST API of the ffsystemd server extension, under the server's base_url
 * (JupyterHub: /user/<name>/). ServerConnection adds authentication and the XSRF header.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  CleanupBody,
  classifyLookup,
  ICleanupResult,
  ILaunchBody,
  isSessionJSON,
  ISession,
  Lookup
} from './model';
import { ISessionSource } from './store';

export type { ICleanupResult } from './model';

/** An HTTP answer: status (0 when the server could not be reached) and parsed JSON body. */
export interface IReply {
  status: number;
  body: unknown;
}

/** Thin client of `<base_url>firefox-launcher/api/...`. */
export class FirefoxAPI implements ISessionSource {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** Start a session. 201 + session JSON, or an error body (message, step, log_tail). */
  async launch(body: ILaunchBody): Promise<IReply> {
    return this.request('firefox', { method: 'POST', body: JSON.stringify(body) });
  }

  /** Look one session up: alive, stopping, ended (404 or stopped/failed) or unknown. */
  async lookup(id: string): Promise<Lookup> {
    const query = `?id=${encodeURIComponent(id)}`;
    const reply = await this.request('firefox', { method: 'GET' }, query);
    return classifyLookup(reply.status, reply.body);
  }

  /** All sessions of this launcher (running or ended but not yet cleaned up). */
  async list(): Promise<ISession[]> {
    const reply = await this.request('firefox', { method: 'GET' });
    if (reply.status !== 200) {
      throw new Error(`listing Firefox sessions failed: ${reply.status}`);
    }
    const sessions = (reply.body as { sessions?: unknown })?.sessions;
    return Array.isArray(sessions) ? sessions.filter(isSessionJSON) : [];
  }

  /** Stop sessions; a 404 (none of them exists any more) is not an error. */
  async cleanup(body: CleanupBody): Promise<ICleanupResult> {
    const reply = await this.request('cleanup', { method: 'POST', body: JSON.stringify(body) });
    if (reply.status === 404) {
      return { stopped: [], errors: {} };
    }
    if (reply.status !== 200) {
      const message = (reply.body as { message?: string })?.message;
      throw new Error(message || `cleanup failed: ${reply.status}`);
    }
    const result = reply.body as Partial<ICleanupResult>;
    return { stopped: result.stopped ?? [], errors: result.errors ?? {} };
  }

  private async request(path: string, init: RequestInit, query = ''): Promise<IReply> {
    const url = URLExt.join(this.settings.baseUrl, 'firefox-launcher', 'api', path) + query;
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      return { status: 0, body: { message: String((error as Error)?.message ?? error) } };
    }
    const text = await response.text();
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = { message: text.slice(0, 500) };
      }
    }
    return { status: response.status, body };
  }
}

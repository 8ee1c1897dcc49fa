/**
 * The DOM a Firefox tab shows besides the Xpra client: "Starting…" with the elapsed time, a
 * failed launch (message, step, Xpra log, Retry) and an ended session (why, a new Firefox).
 * Plain elements, no state: the panel (src/panel.ts) decides what to show.
 */
import { IEndedText, ILaunchFailure, ITrans, startingText } from './model';

/** The "Starting Firefox… N s" box; `dispose()` stops its clock. */
export function startingView(
  attaching: boolean,
  trans: ITrans
): { node: HTMLElement; dispose: () => void } {
  const started = Date.now();
  const text = element('div', 'jp-FFSystemd-statusText');
  const update = (): void => {
    text.textContent = startingText(Date.now() - started, attaching, trans);
  };
  update();
  const timer = window.setInterval(update, 1000);
  const node = element('div', 'jp-FFSystemd-status');
  node.setAttribute('role', 'status');
  node.append(element('div', 'jp-FFSystemd-spinner'), text);
  return { node, dispose: () => window.clearInterval(timer) };
}

/** A failed launch or re-attach, with a Retry button. */
export function errorView(failure: ILaunchFailure, trans: ITrans, retry: () => void): HTMLElement {
  const box = element('div', 'jp-FFSystemd-error');
  box.setAttribute('role', 'alert');
  box.append(element('h2', 'jp-FFSystemd-title', failure.title));
  box.append(element('p', 'jp-FFSystemd-message', failure.message));
  if (failure.step) {
    box.append(element('p', 'jp-FFSystemd-step', trans.__('Failed step: %1', failure.step)));
  }
  if (failure.logTail) {
    const details = element('details', 'jp-FFSystemd-log');
    details.append(element('summary', '', trans.__('Xpra log (last lines)')));
    details.append(element('pre', '', failure.logTail));
    box.append(details);
  }
  box.append(button(trans.__('Retry'), 'jp-FFSystemd-retry', retry));
  return box;
}

/** Why the session ended, with a button for a new Firefox. */
export function endedView(text: IEndedText, trans: ITrans, restart: () => void): HTMLElement {
  const box = element('div', 'jp-FFSystemd-ended');
  box.setAttribute('role', 'status');
  box.append(element('h2', 'jp-FFSystemd-title', text.title));
  box.append(element('p', 'jp-FFSystemd-message', text.detail));
  box.append(button(trans.__('Start a new Firefox'), 'jp-FFSystemd-restart', restart));
  return box;
}

/** The sandboxed iframe of the session's Xpra HTML5 client. */
export function frameView(url: string): HTMLIFrameElement {
  const frame = document.createElement('iframe');
  frame.className = 'jp-FFSystemd-frame';
  frame.title = 'Firefox';
  frame.src = url;
  // An opaque origin for Xpra's client (no allow-same-origin): whatever runs in it cannot use
  // this page's Jupyter credentials or reach into JupyterLab. The server's sandbox policy
  // says the same; this covers browsers that ignore it. No popups, forms or top navigation.
  frame.setAttribute('sandbox', 'allow-scripts');
  frame.setAttribute('allow', 'clipboard-read; clipboard-write; fullscreen');
  frame.referrerPolicy = 'no-referrer';
  frame.setAttribute('scrolling', 'no');
  return frame;
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

/**
 * The first screen size of a launch: the size (X pixels) the tab's Xpra client is going to ask
 * the server for. Sent with the launch, it lets the session set its X screen to exactly that
 * before the client connects, so Xpra answers the client's hello without a resize (which costs
 * it half a second: ffsystemd/screen.py).
 */

/** Smallest width or height the server accepts (ffsystemd.screen.SCREEN_MIN). */
export const SCREEN_MIN = 64;

/**
 * The client's screen for a frame of `width` x `height` CSS pixels (the frame fills the panel,
 * so the panel's client size is the frame's): the client asks for its container's size
 * (clientWidth/clientHeight, whole CSS pixels). Null when the panel is not laid out yet (a
 * size the server would refuse): the launch then goes without one.
 */
export function clientScreen(width: number, height: number): [number, number] | null {
  const w = Math.floor(width);
  const h = Math.floor(height);
  if (!Number.isFinite(w) || !Number.isFinite(h) || w < SCREEN_MIN || h < SCREEN_MIN) {
    return null;
  }
  return [w, h];
}

/** The next animation frame (a panel just added to the shell is laid out by then). */
export function nextFrame(): Promise<void> {
  return new Promise(resolve => requestAnimationFrame(() => resolve()));
}

/** The panel's client screen, waiting one animation frame if it has no size yet. */
export async function panelScreen(node: HTMLElement): Promise<[number, number] | null> {
  const now = clientScreen(node.clientWidth, node.clientHeight);
  if (now) {
    return now;
  }
  await nextFrame();
  return clientScreen(node.clientWidth, node.clientHeight);
}

/**
 * The first screen size of a launch: the size (X pixels) the tab's Xpra client is going to ask
 * the server for. Sent with the launch, it lets the session set its X screen to exactly that
 * before the client connects, so Xpra answers the client's hello without a resize (which costs
 * it half a second: ffsystemd/screen.py).
 *
 * The client asks for its frame's CSS size times its pixel ratio (ffsystemd/client_scale.js,
 * `pixelRatio` and `screenPixels`): this file mirrors that rule. The client also caps the ratio
 * so the size fits the X screen's largest (which it learns only from the server's hello); the
 * server clamps a size beyond that (screen_size), so only such a tab misses the pre-sizing.
 */

/** Smallest width or height the server accepts (ffsystemd.screen.SCREEN_MIN). */
export const SCREEN_MIN = 64;

/** The largest pixel ratio the client uses (client_scale.js MAX_RATIO). */
export const MAX_RATIO = 3;

/**
 * X pixels per CSS pixel for a browser with this devicePixelRatio (client_scale.js
 * `pixelRatio` without the X screen's limit): 1 up to 1.01 (no HiDPI), else the ratio, at most
 * MAX_RATIO.
 */
export function pixelRatio(devicePixelRatio: number): number {
  const ratio = Number(devicePixelRatio);
  if (!(ratio > 1.01) || !Number.isFinite(ratio)) {
    return 1;
  }
  return Math.min(ratio, MAX_RATIO);
}

/**
 * The client's screen for a frame of `width` x `height` CSS pixels (the frame fills the panel,
 * so the panel's client size is the frame's) in a browser with this devicePixelRatio: the
 * whole CSS pixels times the pixel ratio, rounded. Null when the panel is not laid out yet (a
 * size the server would refuse): the launch then goes without one.
 */
export function clientScreen(
  width: number,
  height: number,
  devicePixelRatio = 1
): [number, number] | null {
  const w = Math.floor(width);
  const h = Math.floor(height);
  if (!Number.isFinite(w) || !Number.isFinite(h) || w < SCREEN_MIN || h < SCREEN_MIN) {
    return null;
  }
  const ratio = pixelRatio(devicePixelRatio);
  return [Math.round(w * ratio), Math.round(h * ratio)];
}

/** The next animation frame (a panel just added to the shell is laid out by then). */
export function nextFrame(): Promise<void> {
  return new Promise(resolve => requestAnimationFrame(() => resolve()));
}

/** The panel's client screen, waiting one animation frame if it has no size yet. */
export async function panelScreen(node: HTMLElement): Promise<[number, number] | null> {
  const measure = () =>
    clientScreen(node.clientWidth, node.clientHeight, window.devicePixelRatio);
  const now = measure();
  if (now) {
    return now;
  }
  await nextFrame();
  return measure();
}

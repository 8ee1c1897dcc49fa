import { describe, expect, it } from 'vitest';

import { clientScreen, MAX_RATIO, pixelRatio, SCREEN_MIN } from './screen';

// The client's own rule (ffsystemd/client_scale.js), which this mirrors.
const clientScale = require('../ffsystemd/client_scale.js');

describe('clientScreen', () => {
  it('is the whole CSS pixels of the frame, as the client measures its container', () => {
    expect(clientScreen(1070, 779)).toEqual([1070, 779]);
    expect(clientScreen(1070.6, 779.4)).toEqual([1070, 779]);
  });

  it('is null for a panel not laid out yet (a size the server would refuse)', () => {
    expect(clientScreen(0, 0)).toBeNull();
    expect(clientScreen(SCREEN_MIN - 1, 500)).toBeNull();
    expect(clientScreen(500, Number.NaN)).toBeNull();
    expect(clientScreen(SCREEN_MIN, SCREEN_MIN)).toEqual([SCREEN_MIN, SCREEN_MIN]);
  });

  it('is in X pixels on a HiDPI browser: CSS size times the pixel ratio, rounded', () => {
    expect(clientScreen(1070, 779, 2)).toEqual([2140, 1558]);
    expect(clientScreen(1070, 779, 1.25)).toEqual([1338, 974]);
    expect(clientScreen(1070, 779, 1.005)).toEqual([1070, 779]);
    expect(clientScreen(100, 100, 5)).toEqual([100 * MAX_RATIO, 100 * MAX_RATIO]);
  });

  it('asks for exactly what the client asks for, ratio by ratio', () => {
    expect(MAX_RATIO).toBe(clientScale.MAX_RATIO);
    for (const dpr of [0, 0.5, 1, 1.01, 1.1, 1.25, 1.5, 2, 2.5, 3, 4, Number.NaN]) {
      const ratio = clientScale.pixelRatio(dpr, 1070, 779, 0, 0);
      expect(pixelRatio(dpr)).toBe(ratio);
      expect(clientScreen(1070, 779, dpr)).toEqual(clientScale.screenPixels(1070, 779, ratio));
    }
  });
});

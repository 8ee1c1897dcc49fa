import { describe, expect, it } from 'vitest';

import { clientScreen, SCREEN_MIN } from './screen';

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
});

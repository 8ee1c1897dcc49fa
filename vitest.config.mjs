// Unit tests of the front end's pure logic (src/model.ts); no browser needed.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node'
  }
});

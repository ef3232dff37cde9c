import { describe, expect, it } from 'vitest';
import type { CatalogModel } from './catalog.js';
import { maxPrice } from './router.js';

const model = (name: string, price?: CatalogModel['price']): CatalogModel => ({ name, type: 'chat', deployments: [], price, ownedBy: 't' });

describe("a route's worst-case price", () => {
  it("takes each field's highest value across the models, not one model's", () => {
    expect(maxPrice([model('a', { input: 10, output: 1 }), model('b', { input: 1, output: 5, cachedInput: 0.5 })])).toEqual({ input: 10, output: 5, cachedInput: 0.5 });
    expect(maxPrice([model('a'), model('b', { input: 2, output: 3 })])).toEqual({ input: 2, output: 3 });
    expect(maxPrice([model('a')])).toBeUndefined();
  });
});

/**
 * A small seeded PRNG (mulberry32), so a soak can be replayed: every run draws
 * from its own generator, seeded by the soak's seed and the run's index, so its
 * plan and the faults of its model requests do not depend on how the runs of a
 * round interleave.
 *
 * @example
 * ```ts
 * import * as Random from "./Random.js"
 *
 * const random = Random.make(Random.mix(42, 7))
 * const delay = random.int(0, 100)
 * ```
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export interface Random {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [min, max]. */
  readonly int: (min: number, max: number) => number
  /** True with probability `p`. */
  readonly chance: (p: number) => boolean
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  /** An item chosen by weight: `[[weight, item], ...]`. */
  readonly weighted: <A>(items: ReadonlyArray<readonly [number, A]>) => A
}

/** Mixes a seed and a stream number into a new 32-bit seed. @since 0.1.0 */
export const mix = (seed: number, stream: number): number => {
  let h = (seed ^ Math.imul(stream + 0x9e3779b9, 0x85ebca6b)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b)
  return (h ^ (h >>> 16)) >>> 0
}

/** A generator seeded with `seed`. @since 0.1.0 */
export const make = (seed: number): Random => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(0, items.length - 1)]!,
    weighted: (items) => {
      const total = items.reduce((sum, [weight]) => sum + weight, 0)
      let roll = next() * total
      for (const [weight, item] of items) {
        roll -= weight
        if (roll < 0) return item
      }
      return items[items.length - 1]![1]
    }
  }
}

/** Runs one named step of a benchmark, printing its name and then how long it took. */
export const step = async <A>(name: string, run: () => Promise<A>): Promise<A> => {
  process.stdout.write(`running ${name} ... `)
  const t0 = performance.now()
  const result = await run()
  process.stdout.write(`${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  return result
}

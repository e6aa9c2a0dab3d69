/**
 * One `abort` listener per signal, however many runs share it: concurrent runs
 * on one AbortSignal never trip Node's MaxListenersExceededWarning, and the
 * listener is removed when the last run lets go.
 */
const callbacks = new WeakMap<AbortSignal, { readonly set: Set<() => void>; readonly listener: () => void }>()

export const onAbort = (signal: AbortSignal, callback: () => void): (() => void) => {
  if (signal.aborted) {
    callback()
    return () => {}
  }
  let entry = callbacks.get(signal)
  if (entry === undefined) {
    const set = new Set<() => void>()
    const listener = () => {
      callbacks.delete(signal)
      for (const cb of set) cb()
    }
    entry = { set, listener }
    callbacks.set(signal, entry)
    signal.addEventListener("abort", listener, { once: true })
  }
  const { set, listener } = entry
  set.add(callback)
  return () => {
    set.delete(callback)
    if (set.size === 0 && callbacks.get(signal)?.set === set) {
      callbacks.delete(signal)
      signal.removeEventListener("abort", listener)
    }
  }
}

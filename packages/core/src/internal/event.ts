import type { RunEvent } from "../RunEvent.js"

type Fields<C> = C extends new (props: infer P, options?: any) => any ? Omit<P, "_tag"> : never

/**
 * `new Class(fields, true)` without the Schema class constructor's work on each call (it copies the fields, deletes
 * and merges defaults into a dictionary-mode object: about 1 us in a tight loop, several on the run's path, and a run
 * emits an event per streamed chunk). For fields that are already typed values, as where a run builds its events:
 * the result is an instance of the class with the same own properties in the same order (a test holds it to the
 * constructor's).
 */
export const make = <C extends (new (props: any, options?: any) => RunEvent) & { readonly _tag: string }>(
  Class: C,
  fields: Fields<C>
): InstanceType<C> => Object.assign(Object.create(Class.prototype), fields, { _tag: Class._tag })

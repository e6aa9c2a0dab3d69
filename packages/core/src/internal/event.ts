import type { RunEvent } from "../RunEvent.js"

import type { EventCommon } from "./context.js"

type Fields<C> = C extends new (props: infer P, options?: any) => any ? Omit<P, "_tag" | keyof EventCommon> : never

/**
 * `new Class({ ...common, ...fields }, true)` without the Schema class constructor's work on each call (it copies the
 * fields, deletes and merges defaults into a dictionary-mode object: about 1 us in a tight loop, several on the run's
 * path, and a run emits an event per streamed chunk), and without a spread of `common` into a literal (measured: ~4 us
 * each when thousands of runs end at once). For fields that are already typed values, as where a run builds its
 * events: the result is an instance of the class with the same own properties in the same order (a test holds it to
 * the constructor's).
 */
export const make = <C extends (new (props: any, options?: any) => RunEvent) & { readonly _tag: string }>(
  Class: C,
  common: EventCommon,
  fields: Fields<C>
): InstanceType<C> => {
  const event = new (allocatorOf(Class))()
  event.runId = common.runId
  event.seq = common.seq
  event.agent = common.agent
  Object.assign(event, fields)
  event._tag = Class._tag
  return event as InstanceType<C>
}

/**
 * An empty constructor per event class, with the class's prototype: what it makes keeps its properties in the object
 * (V8 sizes a constructor's objects by the properties they get), where `Object.create(prototype)` leaves room for
 * four and puts the rest in a separate array (~30 bytes more per event, and a run holds every event it emitted).
 */
const allocatorOf = (Class: { readonly prototype: unknown }): new () => Record<string, unknown> => {
  let allocator = allocators.get(Class)
  if (allocator === undefined) {
    allocator = function (this: Record<string, unknown>) {} as unknown as new () => Record<string, unknown>
    allocator.prototype = Class.prototype
    allocators.set(Class, allocator)
  }
  return allocator
}

const allocators = new Map<object, new () => Record<string, unknown>>()

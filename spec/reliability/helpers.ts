/** What the reliability specs share. */

/** The rejection of `promise`; fails the spec if it resolves, or if it is still pending after `ms` (a hang). */
export async function rejection(promise: Promise<unknown>, ms = 60_000): Promise<Error> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms (a hang)`)), ms).unref());
  try {
    await Promise.race([promise, timeout]);
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection, but it resolved');
}

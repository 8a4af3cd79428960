// A bound on how long to wait for something that may hang (a ClickHouse that stopped answering).
/** `promise`'s value, or undefined when it takes longer than `ms` (it is left to settle alone). */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

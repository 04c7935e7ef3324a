// fetch() rejects with only "fetch failed"; an operator needs to know the server could not be reached, and why.

/** fetch, but a network failure says `cannot reach <origin>: <ECONNREFUSED|ENOTFOUND|...>`. */
export async function fetchOrSayWhy(url: URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new Error(`cannot reach ${url.origin}: ${why}`);
  }
}

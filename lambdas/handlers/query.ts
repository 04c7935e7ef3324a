// Query strings as the contract writes them: `GET /v1/reboots?node=&status=&limit=&cursor=`.

/**
 * A query's parameters without the empty ones. An empty value asks for nothing: no filter, the default
 * page size, the first page. That is how the contract's route table writes the parameters out, and what
 * a script with an unset variable sends; a value that is given and wrong is still a 400.
 */
export function givenParams(query: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(query).filter(([, v]) => v !== ''));
}

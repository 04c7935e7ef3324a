// Fills ${Name} placeholders of an ASL file the way CloudFormation DefinitionSubstitutions do, so local and AWS runs see the same text.

export class MissingSubstitution extends Error {
  override readonly name = 'MissingSubstitution';
}

const PLACEHOLDER = /\$\{([^{}]*)\}/g;

/**
 * Replaces every `${Key}` by `substitutions[Key]`, textually (a value is inserted as-is, exactly as
 * CloudFormation does, so a placeholder inside a JSON string gets a bare string). Keys are matched exactly.
 * Every placeholder must have a value; unused substitutions are fine.
 */
export function substitute(definitionText: string, substitutions: Record<string, string>): string {
  const missing = new Set<string>();
  const out = definitionText.replace(PLACEHOLDER, (whole, key: string) => {
    if (Object.hasOwn(substitutions, key)) return String(substitutions[key]);
    missing.add(key);
    return whole;
  });
  if (missing.size) {
    const names = [...missing].map((k) => '${' + k + '}').join(', ');
    throw new MissingSubstitution(`no substitution for ${names}`);
  }
  return out;
}

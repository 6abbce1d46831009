// RFC 6901 JSON Pointer tokens: "~" becomes "~0" and "/" becomes "~1" (in that order).
export const escapeToken = (token: string): string => token.replace(/~/g, '~0').replace(/\//g, '~1');

export const pointer = (...tokens: (string | number)[]): string => tokens.map((t) => `/${escapeToken(String(t))}`).join('');

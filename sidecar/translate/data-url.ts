// Data URLs (`data:image/png;base64,...`) ↔ Anthropic base64 sources.

export interface Base64Source {
  mediaType: string;
  data: string;
}

const dataUrl = /^data:([^;,]+)((?:;[^;,=]+=[^;,]*)*);base64,/i;

/** Parses a base64 data URL; undefined when `url` is not one. */
export function parseBase64DataUrl(url: string): Base64Source | undefined {
  const m = dataUrl.exec(url);
  if (m === null) return undefined;
  return { mediaType: m[1]!.toLowerCase(), data: url.slice(m[0].length) };
}

export const toDataUrl = (s: Base64Source): string => `data:${s.mediaType};base64,${s.data}`;

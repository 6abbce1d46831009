// The rules for attribution tags (`x-llmgw-tags` on requests, `UsageReport.tags` on the wire), in one
// place for the sidecar that accepts them and the quota service that keeps them.
export const MAX_TAGS = 16;
export const MAX_TAG_VALUE = 128;
/** Letters, digits and `_.-/`, up to 64. */
export const TAG_KEY = /^[A-Za-z0-9_.\-/]{1,64}$/;

// Basic colour families of free-text colour fields (shop catalogues' `color`: "Onyx Black/ Stone",
// "Multi-color", "Heather Grey"), for colour probes with clean labels. bench/real-summary's colour-families uses it.
export const COLOUR_FAMILIES: Record<string, string[]> = {
  black: ['black', 'onyx', 'jet'],
  white: ['white', 'ivory', 'cream', 'offwhite'],
  blue: ['blue', 'navy', 'denim', 'indigo', 'royal', 'turquoise', 'teal', 'aqua'],
  red: ['red', 'burgundy', 'wine', 'maroon', 'scarlet'],
  pink: ['pink', 'coral', 'fuchsia', 'rose', 'blush', 'magenta'],
  purple: ['purple', 'violet', 'lavender', 'plum', 'lilac'],
  green: ['green', 'olive', 'mint', 'khaki', 'emerald'],
  grey: ['grey', 'gray', 'charcoal', 'heather'],
  yellow: ['yellow', 'mustard', 'gold', 'golden'],
  orange: ['orange', 'rust'],
  beige: ['beige', 'tan', 'nude', 'camel', 'taupe', 'apricot'],
  brown: ['brown', 'coffee', 'chocolate'],
  multi: ['multi', 'multicolor', 'multicolored', 'multicolour', 'multicoloured', 'floral', 'print', 'printed'],
};

const FAMILY_OF = new Map(Object.entries(COLOUR_FAMILIES).flatMap(([family, names]) => names.map((name) => [name, family] as const)));

/** The one colour family a free-text colour names, or null (none, or more than one). */
export function colourFamily(text: string): string | null {
  const words = text.toLowerCase().replace(/off[- ]white/g, 'offwhite').replace(/multi[- ]colou?r(ed)?/g, 'multicolor').split(/[^a-z]+/);
  const found = new Set(words.flatMap((w) => FAMILY_OF.get(w) ?? []));
  return found.size === 1 ? [...found][0]! : null;
}

// Builds data/fashion-thesaurus.json: a tree of fashion words (fashion type / group / ... / words)
// for eval-words (the report §3.6 triplets) and the fashion-type attention (§4.3 types).
//   node dist/data/build-thesaurus.js ../shared/data/myntra-44k/products.csv > data/fashion-thesaurus.json
// Clothing groups come from the Myntra taxonomy (masterCategory > subCategory > articleType), their
// words from the type names as the project tokenizer splits them, kept only where Myntra's own titles
// use them for that group; everything else (colour families, textures, styles, FR/IT synonyms) is
// written here by the project. Only derived words leave the dataset: no title, id or image.
import { readCsv } from '../src/lib/io/csv.js';
import { tokenize } from '../src/lib/text/tokenize.js';
import { stopwordSet } from '../src/lib/text/stopwords.js';

const TOKENS = { stopwords: stopwordSet(['en', 'fr', 'it']), minLength: 2 };
const words = (text: string): string[] => tokenize(text, TOKENS);

// Myntra master categories that are clothing; Personal Care, Home, Free Items and Sporting Goods are not.
const CLOTHING_MASTERS = new Set(['Apparel', 'Footwear', 'Accessories']);
// A candidate word goes to the deepest group that holds this share of the titles using it.
const PURITY = 0.7;
const MIN_TITLES = 5;

// Words of the type names that say nothing about the garment ("casual shoes": only "shoes" is kept).
const NOT_GARMENT = new Set(['casual', 'formal', 'sports', 'sport', 'free', 'gift', 'gifts', 'set', 'sets', 'accessory', 'accessories', 'travel', 'lounge', 'night', 'apparel', 'innerwear', 'loungewear', 'nightwear', 'mobile', 'laptop', 'tablet', 'water', 'key', 'rain', 'nehru', 'mens', 'essentials', 'baby', 'dolls', 'waist', 'chains', 'care', 'mist', 'body']);

// Synonyms the project adds to the group of a Myntra word: plurals, spellings, French and Italian
// (the report's crawl was EN/FR; the fixture shops write EN/FR/IT).
const SYNONYMS: Record<string, string[]> = {
  dresses: ['dress', 'midi', 'robe', 'robes', 'vestito', 'vestiti', 'abito', 'abiti'],
  tshirts: ['tshirt', 't-shirt', 't-shirts', 'tee', 'tees', 'tee-shirt', 'tee-shirts', 'maglietta', 'magliette'],
  tops: ['top', 'haut', 'hauts'],
  shirts: ['shirt', 'chemise', 'chemises', 'camicia', 'camicie'],
  trousers: ['trouser', 'chinos', 'chino', 'pantalon', 'pantalons', 'pantaloni'],
  pants: ['pant'],
  jeans: ['denims'],
  skirts: ['skirt', 'jupe', 'jupes', 'gonna', 'gonne'],
  shoes: ['shoe', 'chaussures', 'scarpe'],
  heels: ['pumps', 'escarpins', 'décolleté'],
  sneakers: ['baskets'],
  bags: ['bag', 'sac', 'sacs', 'borsa', 'borse'],
  handbags: ['handbag', 'tote', 'totes', 'cabas', 'borsetta', 'borsette'],
  jackets: ['jacket', 'veste', 'vestes', 'giacca', 'giacche'],
  sweaters: ['sweater', 'pull', 'maglione', 'jumper'],
};
// Garment words Myntra's type names lack, put under one of its groups.
const EXTRA_GARMENTS: Array<[string, string[]]> = [['Footwear/Shoes/Casual Shoes', ['sneakers']]];

// Colour families over Myntra's 46 baseColour values (every token of those values is listed here or
// in COLOUR_MODIFIERS; the build fails otherwise), with common shade names and FR/IT words.
const COLOURS: Record<string, Record<string, string[]>> = {
  neutral: {
    black: ['black', 'charcoal', 'jet', 'noir', 'noire', 'nero', 'nera'],
    white: ['white', 'ivory', 'cream', 'écru', 'blanc', 'blanche', 'bianco', 'bianca', 'panna'],
    grey: ['grey', 'gray', 'steel', 'ash', 'gris', 'grise', 'grigio'],
    beige: ['beige', 'skin', 'nude', 'tan', 'taupe', 'khaki', 'sand', 'camel', 'mushroom'],
    brown: ['brown', 'coffee', 'chocolate', 'marron', 'marrone', 'cognac'],
  },
  chromatic: {
    red: ['red', 'maroon', 'burgundy', 'rust', 'scarlet', 'crimson', 'wine', 'bordeaux', 'rouge', 'rosso', 'rossa'],
    pink: ['pink', 'rose', 'peach', 'magenta', 'fuchsia', 'blush', 'rosa'],
    orange: ['orange', 'coral', 'arancione'],
    yellow: ['yellow', 'mustard', 'lemon', 'jaune', 'giallo', 'gialla'],
    green: ['green', 'olive', 'lime', 'mint', 'emerald', 'vert', 'verte', 'verde'],
    blue: ['blue', 'navy', 'teal', 'turquoise', 'cobalt', 'azure', 'bleu', 'bleue', 'blu', 'azzurro'],
    purple: ['purple', 'lavender', 'mauve', 'violet', 'lilac', 'plum', 'viola'],
  },
  metallic: {
    gold: ['gold', 'golden', 'doré', 'oro'],
    silver: ['silver', 'argent', 'argento'],
    bronze: ['bronze', 'copper', 'cuivre', 'rame'],
  },
};
const COLOUR_MODIFIERS = new Set(['off', 'melange', 'multi', 'metallic', 'sea', 'fluorescent']);

// Textures as the report groups them (patterns, materials, surfaces), written by the project.
const TEXTURES: Record<string, Record<string, string[]>> = {
  pattern: {
    stripes: ['striped', 'stripes', 'stripe', 'pinstripe', 'rayures', 'rayé', 'rayée', 'righe', 'rigato', 'rigata'],
    dots: ['dots', 'dotted', 'dot', 'polka', 'pois'],
    checks: ['checked', 'checks', 'check', 'gingham', 'tartan', 'plaid', 'carreaux', 'vichy', 'quadri', 'quadretti', 'scozzese'],
    plain: ['plain', 'solid', 'uni', 'unie', 'tinta', 'unita'],
    printed: ['printed', 'print', 'floral', 'graphic', 'paisley', 'imprimé', 'fantasia', 'stampa'],
  },
  material: {
    cotton: ['cotton', 'coton', 'cotone'],
    linen: ['linen', 'lin', 'lino'],
    wool: ['wool', 'woollen', 'cashmere', 'laine', 'lana'],
    synthetic: ['polyester', 'poliestere', 'viscose', 'viscosa', 'nylon', 'elastane', 'lycra'],
    silk: ['silk', 'satin', 'soie', 'seta', 'raso'],
    leather: ['leather', 'suede', 'cuir', 'pelle'],
    canvas: ['canvas', 'denim', 'toile', 'tela'],
  },
  surface: {
    soft: ['soft', 'fluffy', 'fleece', 'velvet', 'plush', 'doux', 'morbido'],
    knit: ['knitted', 'knit', 'ribbed', 'cable', 'crochet', 'tricot', 'maglia'],
    sheer: ['sheer', 'lace', 'mesh', 'dentelle', 'pizzo'],
    shiny: ['shiny', 'glossy', 'sequin', 'sequined', 'glitter', 'brillant', 'lucido'],
  },
};

// Styles: fit and silhouette, occasion (Myntra's `usage` values and their kin), and look.
const STYLES: Record<string, Record<string, string[]>> = {
  fit: {
    slim: ['slim', 'skinny', 'fitted', 'ajustée', 'ajusté', 'aderente', 'moulant'],
    regular: ['regular', 'straight', 'droite', 'droit', 'regolare'],
    loose: ['loose', 'oversized', 'relaxed', 'baggy', 'ample', 'large', 'wide'],
  },
  occasion: {
    casual: ['casual', 'everyday', 'weekend', 'décontracté'],
    formal: ['formal', 'office', 'business', 'elegant', 'élégant', 'elegante'],
    party: ['party', 'evening', 'cocktail', 'soirée', 'sera'],
    sports: ['sports', 'sport', 'sporty', 'running', 'training', 'gym', 'athletic'],
    ethnic: ['ethnic', 'traditional', 'festive'],
  },
  look: {
    vintage: ['vintage', 'retro', 'rétro', 'classic', 'classique', 'classico'],
    bohemian: ['boho', 'bohemian', 'bohème'],
    minimal: ['minimal', 'minimalist', 'basic', 'basique'],
  },
};

interface Node {
  path: string[];
  words: string[];
  source: string;
}

async function main(csvPath: string): Promise<void> {
  // Titles' words per Myntra group, to keep only type-name words the titles use for that group.
  const taxonomy = new Map<string, string[]>(); // articleType key -> path
  const titlesWith = new Map<string, Map<string, number>>(); // word -> group key -> titles
  const typeNames = new Map<string, Set<string>>(); // path key -> candidate words from its names
  const colourTokens = new Set<string>();
  const pluralOf = new Map<string, string>(); // "shirt" -> "shirts"
  for await (const { value } of readCsv(csvPath)) {
    const r = value as Record<string, string>;
    for (const t of words(r.baseColour ?? '')) colourTokens.add(t);
    if (!CLOTHING_MASTERS.has(r.masterCategory)) continue;
    const path = [r.masterCategory, r.subCategory, r.articleType];
    const key = path.join('/');
    taxonomy.set(key, path);
    for (let depth = 2; depth <= 3; depth++) {
      const at = path.slice(0, depth).join('/');
      const names = typeNames.get(at) ?? new Set<string>();
      for (const w of words(path[depth - 1])) {
        if (NOT_GARMENT.has(w)) continue;
        // Type names are plural ("Shirts"), titles singular ("Navy Blue Shirt"): both are candidates.
        for (const form of [w, w.replace(/s$/, ''), w.replace(/es$/, '')]) {
          if (form.length <= 2) continue;
          names.add(form);
          if (form !== w) pluralOf.set(form, w);
        }
      }
      typeNames.set(at, names);
    }
    for (const w of new Set(words(r.productDisplayName ?? ''))) {
      const m = titlesWith.get(w) ?? new Map<string, number>();
      m.set(key, (m.get(key) ?? 0) + 1);
      titlesWith.set(w, m);
    }
  }
  for (const t of colourTokens) {
    const known = Object.values(COLOURS).some((fam) => Object.values(fam).some((ws) => ws.includes(t)));
    if (!known && !COLOUR_MODIFIERS.has(t)) throw new Error(`Myntra baseColour word '${t}' has no colour family`);
  }

  // Each candidate word goes to the deepest group (articleType, subCategory, masterCategory) holding
  // PURITY of the titles that use it; words the titles never use enough are dropped.
  const placed = new Map<string, string>(); // word -> group key
  const candidates = new Set<string>();
  for (const names of typeNames.values()) for (const w of names) candidates.add(w);
  for (const w of [...candidates].sort()) {
    const byType = titlesWith.get(w);
    if (!byType) continue;
    const total = [...byType.values()].reduce((a, b) => a + b, 0);
    if (total < MIN_TITLES) continue;
    for (const depth of [3, 2, 1]) {
      const counts = new Map<string, number>();
      for (const [key, n] of byType) {
        const at = key.split('/').slice(0, depth).join('/');
        counts.set(at, (counts.get(at) ?? 0) + n);
      }
      const [best, n] = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
      if (n / total >= PURITY) {
        placed.set(w, best);
        break;
      }
    }
  }
  // A singular goes with its type name ("earring" with "earrings"), wherever its own titles put it.
  for (const [single, plural] of pluralOf) {
    const titles = [...(titlesWith.get(single)?.values() ?? [])].reduce((a, b) => a + b, 0);
    if (placed.has(plural) && titles >= MIN_TITLES) placed.set(single, placed.get(plural)!);
  }
  const nodes = new Map<string, Node>();
  const add = (path: string[], word: string): void => {
    const key = path.join('/');
    // Clothing paths are Myntra's (their words partly the project's synonyms); the rest the project's.
    const node = nodes.get(key) ?? { path, words: [], source: path[0] === 'clothing' ? 'myntra' : 'atelier' };
    if (!node.words.includes(word)) node.words.push(word);
    nodes.set(key, node);
  };
  const taken = new Set<string>();
  const place = (path: string[], word: string): void => {
    if (taken.has(word)) return;
    taken.add(word);
    add(path, word);
  };
  // The project's lists first: a word both lists hold keeps the project's sense ("robe" is a dress
  // in the French shops; Myntra's titles use it for bath robes; "lace" is a texture).
  for (const [key, extra] of EXTRA_GARMENTS) for (const w of extra) place(['clothing', ...key.split('/')], w);
  for (const [w, synonyms] of Object.entries(SYNONYMS)) {
    const key = placed.get(w) ?? EXTRA_GARMENTS.find(([, ws]) => ws.includes(w))?.[0];
    if (!key) continue;
    for (const s of synonyms) place(['clothing', ...key.split('/')], s);
  }
  for (const [type, tree] of [['colour', COLOURS], ['texture', TEXTURES], ['style', STYLES]] as const) {
    for (const [group, leaves] of Object.entries(tree)) for (const [leaf, ws] of Object.entries(leaves)) for (const w of ws) place([type, group, leaf], w);
  }
  for (const [w, key] of [...placed].sort()) place(['clothing', ...key.split('/')], w);
  const sorted = [...nodes.values()].sort((a, b) => (a.path.join('/') < b.path.join('/') ? -1 : 1));
  const out = {
    name: 'atelier fashion thesaurus',
    types: ['clothing', 'colour', 'texture', 'style'],
    provenance: {
      clothing: `Myntra taxonomy (masterCategory > subCategory > articleType of ${CLOTHING_MASTERS.size} clothing master categories, Kaggle "Fashion Product Images", via ../shared/data/myntra-44k/products.csv): the words of the type names, each placed at the deepest group holding >= ${PURITY * 100}% of the >= ${MIN_TITLES} Myntra titles that use it; plurals, spellings and FR/IT synonyms added by the project (source "atelier")`,
      colour: "families written by the project over Myntra's 46 baseColour values (every one covered), with shade names and FR/IT words",
      texture: 'written by the project: patterns, materials and surfaces (the report §4.3 texture type), EN/FR/IT',
      style: "written by the project: fit, occasion (Myntra's usage values and kin) and look, EN/FR/IT",
      built: 'node dist/data/build-thesaurus.js ../shared/data/myntra-44k/products.csv > data/fashion-thesaurus.json',
    },
    groups: sorted.map((n) => ({ path: n.path, source: n.source, words: n.words })),
  };
  process.stdout.write(JSON.stringify(out, null, 1).replace(/\n\s+(?=[^{\s[])/g, ' ').replace(/\n\s+\]/g, ' ]') + '\n');
}

const csv = process.argv[2];
if (!csv) {
  process.stderr.write('usage: node dist/data/build-thesaurus.js MYNTRA_PRODUCTS_CSV > data/fashion-thesaurus.json\n');
  process.exit(2);
}
await main(csv);

// Stopwords for the shop languages of the report (§2.6: mostly French, English and Italian sources):
// function words only (articles, pronouns, prepositions, auxiliaries), never fashion vocabulary:
// 'down', 'off', 'col' (collar) and 'été' (summer) are left out on purpose. Lowercase NFC, accents kept.

export type StopwordLanguage = 'en' | 'fr' | 'it';

export const STOPWORD_LANGUAGES: readonly StopwordLanguage[] = ['en', 'fr', 'it'];

const ENGLISH = `
a about above after again against all also am an and any are aren as at be because been before being
below between both but by can cannot could couldn did didn do does doesn doing don during each either
else ever every few for from further had hadn has hasn have haven having he her here hers herself him
himself his how however i if in into is isn it its itself just let ll me might more most must mustn my
myself neither no nor not now of on once only or other ought our ours ourselves out over own per
rather re same shall shan she should shouldn since so some such than that the their theirs them
themselves then there these they this those though through thus to too toward towards under until up
upon us ve very via was wasn we were weren what whatever when whenever where whereas whether which while
who whoever whom whose why will with within without won would wouldn yet you your yours yourself
yourselves
`;

const FRENCH = `
à afin ai aie aient aies ait alors as au aucun aucune auquel aussi autre autres aux auxquelles auxquels
avaient avais avait avant avec avez aviez avions avoir avons ayant ayez ayons c ça car ce ceci cela celle
celles celui cependant certains ces cet cette ceux chacun chaque chez ci comme comment d dans de des
desquelles desquels dès donc dont du duquel durant elle elles en encore entre es est et étaient étais
était étant êtes étiez étions être eu eue eues eurent eus eusse eut eux fûmes furent fus fut ici il
ils j je jusqu jusque l la laquelle le lequel les lesquelles lesquels leur leurs lors lorsque lui m ma
mais me même mêmes mes moi mon n ne ni nos notre nous on ont or ou où par parce parmi pas pendant peu
peut plus pour pourquoi puis qu quand que quel quelle quelles quels qui quoi s sa sans se selon sera
serai seraient serait seras serez seriez serions serons seront ses si sien sienne siennes siens soi soient
sois soit sommes son sont sous soyez soyons suis sur t ta te tes toi ton tous tout toute toutes très tu
un une unes uns vers via vos votre vous y
`;

const ITALIAN = `
a abbia abbiamo abbiano ad agl agli ai al all alla alle allo anche avere aveva avevano avevo avrà avrebbe
c che chi ci coi come con contro cui d da dagl dagli dai dal dall dalla dalle dallo degl degli dei del
dell della delle dello dentro di dov dove e è ebbe ed egli ella era erano ero essa esse essendo essere
essi esso fa fra fu furono gli ha hai hanno ho i il in io l la le lei li lo loro lui ma me mentre mi mia
mie miei mio ne negl negli nei nel nell nella nelle nello noi non nostra nostre nostri nostro o ogni per
perché però più poi qual quale quali quando quanto quella quelle quelli quello questa queste questi
questo se sé sei senza si sia siamo siano sono sta stai stanno stato stesso su sua sue sugl sugli sui sul
sull sulla sulle sullo suo suoi te ti tra tu tua tue tuo tuoi tutta tutte tutti tutto un una uno vi voi
vostra vostre vostri vostro
`;

const LISTS: Record<StopwordLanguage, string> = { en: ENGLISH, fr: FRENCH, it: ITALIAN };

/** The stopwords of one language, NFC-normalised. */
export function stopwordsOf(language: StopwordLanguage): string[] {
  return LISTS[language]
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => w.normalize('NFC'));
}

/** The union of the stopword lists of `languages`. */
export function stopwordSet(languages: readonly StopwordLanguage[]): Set<string> {
  const set = new Set<string>();
  for (const language of languages) for (const word of stopwordsOf(language)) set.add(word);
  return set;
}

/** True when `code` names a language with a stopword list here. */
export function isStopwordLanguage(code: string): code is StopwordLanguage {
  return (STOPWORD_LANGUAGES as readonly string[]).includes(code);
}

/** Words from a user's stopword file: one or more per line, `#` starts a comment. */
export function parseStopwordList(text: string): string[] {
  const words: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const content = line.replace(/#.*$/, '').trim();
    if (content === '') continue;
    for (const word of content.split(/[\s,]+/)) if (word !== '') words.push(word.normalize('NFC').toLowerCase());
  }
  return words;
}

// The toolkit's version, read once from package.json.
import { readFileSync } from 'node:fs';

const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
export const atelierVersion: string = packageJson.version;

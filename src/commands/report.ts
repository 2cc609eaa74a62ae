import { defineCommand } from '../lib/command.js';

export default defineCommand<Record<string, unknown>>({
  name: 'report',
  summary: '(being written)',
  options: {},
  examples: [],
  async run() {
    throw new Error('not yet implemented');
  },
});

// Runs in each test file's process before its tests: scratch directories go when the file ends.
import { afterAll } from 'vitest';
import { removeScratchDirs } from './helpers.js';

afterAll(removeScratchDirs);

// The resolve hook of trace-hook.mjs: logs each resolved file URL to $ATELIER_TRACE.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (resolved.url.startsWith('file:')) appendFileSync(process.env.ATELIER_TRACE, `${resolved.url}\n`);
  return resolved;
}

#!/usr/bin/env node
// Converts node:test test files to vitest in place: `node tools/node-test-to-vitest.mjs [file|dir ...]`
// (default test/). Idempotent: a file that no longer imports node:test is left as it is. Prints each
// file it converts, and `file:line: what` for every construct it could not convert (exit 1 then).
// It edits the text at the nodes TypeScript's parser finds, so the rest of a file keeps its layout.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const HOOKS = { before: 'beforeAll', after: 'afterAll', beforeEach: 'beforeEach', afterEach: 'afterEach' };
const TESTS = new Set(['test', 'it', 'describe', 'suite']);
// node:test's TestContext members and their vitest names; null: no equivalent, reported.
const CONTEXT = { skip: 'skip', diagnostic: 'annotate', after: 'onTestFinished', signal: 'signal', todo: null, test: null, plan: null, mock: null, assert: null, runOnly: null, before: null, beforeEach: null, afterEach: null, fullName: null };

function filesUnder(path) {
  if (statSync(path).isDirectory()) return readdirSync(path).sort().flatMap((n) => (n === 'node_modules' ? [] : filesUnder(join(path, n))));
  return /\.(test\.)?[cm]?[jt]s$/.test(path) ? [path] : [];
}

/** Converts one file's text; returns { text, problems } (text null when it has no node:test import). */
export function convert(text, fileName = 'file.ts') {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, fileName.endsWith('.js') ? ts.ScriptKind.JS : ts.ScriptKind.TS);
  const edits = [];
  const problems = [];
  const lineOf = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const problem = (node, what) => problems.push(`${fileName}:${lineOf(node)}: ${what}`);
  const src = (node) => node.getText(sf);
  const replace = (node, replacement) => edits.push([node.getStart(sf), node.getEnd(), replacement]);

  // local name -> node:test name
  const locals = new Map();
  let found = false;
  for (const stmt of sf.statements) {
    if (!ts.isImportDeclaration(stmt) || stmt.moduleSpecifier.text !== 'node:test') continue;
    found = true;
    const clause = stmt.importClause;
    const named = clause?.namedBindings && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings : null;
    if (!clause || clause.name || !named) {
      problem(stmt, 'default or namespace import of node:test: import { test, ... } by name');
      continue;
    }
    const specs = [];
    const kept = []; // names vitest lacks stay imported from node:test (and are reported)
    for (const el of named.elements) {
      const imported = (el.propertyName ?? el.name).text;
      const local = el.name.text;
      if (el.isTypeOnly || clause.isTypeOnly) {
        specs.push(src(el));
        continue;
      }
      if (imported in HOOKS) {
        locals.set(local, imported);
        const to = HOOKS[imported];
        specs.push(local === imported ? to : `${to} as ${local}`);
      } else if (TESTS.has(imported)) {
        locals.set(local, imported);
        const to = imported === 'suite' ? 'describe' : imported;
        specs.push(local === to ? to : `${to} as ${local}`);
      } else {
        problem(el, `node:test export '${imported}' has no vitest equivalent here`);
        kept.push(src(el));
      }
    }
    const type = clause.isTypeOnly ? 'type ' : '';
    const lines = [];
    if (specs.length) lines.push(`import ${type}{ ${specs.join(', ')} } from 'vitest';`);
    if (kept.length) lines.push(`import ${type}{ ${kept.join(', ')} } from 'node:test';`);
    replace(stmt, lines.join('\n'));
  }
  if (!found) return { text: null, problems };

  // Is this identifier a local variable or parameter of the same name rather than the import?
  function shadowed(id) {
    for (let scope = id.parent; scope && !ts.isSourceFile(scope); scope = scope.parent) {
      if (ts.isFunctionLike(scope) && scope.parameters?.some((p) => ts.isIdentifier(p.name) && p.name.text === id.text)) return true;
      const statements = ts.isBlock(scope) || ts.isCaseClause(scope) ? scope.statements : null;
      if (statements?.some((st) => ts.isVariableStatement(st) && st.declarationList.declarations.some((d) => ts.isIdentifier(d.name) && d.name.text === id.text))) return true;
    }
    return false;
  }

  const contexts = new Set(); // parameter declarations that hold a test context

  function testCall(call) {
    // test(name, options?, fn?), test.skip(...), test.only(...), describe.skip(...)
    let callee = call.expression;
    const modifiers = [];
    while (ts.isPropertyAccessExpression(callee)) {
      modifiers.unshift(callee.name.text);
      callee = callee.expression;
    }
    if (!ts.isIdentifier(callee) || !locals.has(callee.text) || !TESTS.has(locals.get(callee.text)) || shadowed(callee)) return false;
    const kind = locals.get(callee.text);
    if (modifiers.some((m) => !['skip', 'only', 'todo'].includes(m))) problem(call, `${src(call.expression)}: unknown modifier`);
    if (modifiers.includes('todo') && call.arguments.length > 1) problem(call, `${src(call.expression)} with a body: node runs it, vitest does not`);
    const args = call.arguments;
    if (args.length === 0 || ts.isFunctionLike(args[0]) || ts.isObjectLiteralExpression(args[0])) {
      problem(call, `${kind}() without a name first`);
      return true;
    }
    const fn = args.find((a, i) => i > 0 && (ts.isArrowFunction(a) || ts.isFunctionExpression(a)));
    if (fn && kind !== 'describe' && fn.parameters.length > 0) contexts.add(fn.parameters[0]);
    const options = args[1] && ts.isObjectLiteralExpression(args[1]) ? args[1] : null;
    if (!options) return true;
    const keep = [];
    const add = []; // modifiers to add
    let skipExpr = null;
    let todoNote = null;
    for (const prop of options.properties) {
      const key = prop.name && (ts.isIdentifier(prop.name) || ts.isStringLiteral(prop.name)) ? prop.name.text : null;
      const value = ts.isPropertyAssignment(prop) ? prop.initializer : ts.isShorthandPropertyAssignment(prop) ? prop.name : null;
      const isFalse = value && value.kind === ts.SyntaxKind.FalseKeyword;
      const isTrue = value && value.kind === ts.SyntaxKind.TrueKeyword;
      if (key === 'timeout') keep.push(src(prop));
      else if (key === 'skip' && value) {
        if (isTrue) add.push('skip');
        else if (!isFalse) skipExpr = value;
      } else if (key === 'only' && value) {
        if (isTrue) add.push('only');
        else if (!isFalse) problem(prop, 'only: <expression>: not converted');
      } else if (key === 'todo' && value) {
        if (!isFalse) todoNote = isTrue ? 'todo' : ts.isStringLiteralLike(value) ? value.text : src(value);
      } else if (key === 'concurrency' && value) {
        if (isTrue || (ts.isNumericLiteral(value) && Number(value.text) > 1)) add.push('concurrent');
        else if (!isFalse && !(ts.isNumericLiteral(value) && Number(value.text) <= 1)) problem(prop, 'concurrency: <expression>: not converted');
      } else problem(prop, `option ${key ?? src(prop)}: no vitest equivalent converted`);
    }
    if (todoNote !== null) {
      // node:test runs a todo test and never fails on it; the nearest vitest form runs it and expects it to
      // fail, so reaching the goal shows up as a failure to turn into a plain test.
      if (fn && kind !== 'describe') add.push('fails');
      else problem(options, 'todo on a suite or without a body: not converted');
    }
    if (add.length) edits.push([call.expression.getEnd(), call.expression.getEnd(), add.map((m) => `.${m}`).join('')]);
    if (keep.length) replace(options, `{ ${keep.join(', ')} }`);
    else edits.push([options.getFullStart() - 1, options.getEnd(), '']); // drops ", { ... }"
    if (todoNote !== null && fn && kind !== 'describe') {
      const lineStart = text.lastIndexOf('\n', call.getStart(sf)) + 1;
      const indent = text.slice(lineStart, call.getStart(sf)).match(/^\s*/)[0];
      if (lineStart + indent.length === call.getStart(sf)) edits.push([lineStart, lineStart, `${indent}// todo (node:test): ${todoNote.replace(/\n/g, ' ')}\n`]);
    }
    if (skipExpr) {
      // vitest's skip option takes no reason: skip from inside the test, so the reason is reported.
      if (!fn || kind === 'describe') problem(skipExpr, 'skip: <expression> on a suite or without a function: not converted');
      else if (!ts.isBlock(fn.body)) problem(fn, 'skip: <expression> with an expression body: not converted');
      else if (fn.parameters.length > 0 && !ts.isIdentifier(fn.parameters[0].name)) problem(fn, 'skip: <expression> with a destructured context: not converted');
      else {
        let ctx = 'ctx';
        if (fn.parameters.length > 0) ctx = fn.parameters[0].name.text;
        else {
          const open = fn.getStart(sf) + src(fn).indexOf('(') + 1;
          const head = text.slice(fn.getStart(sf), fn.body.getStart(sf));
          if (!head.includes('(')) {
            problem(fn, 'skip: <expression> on a parameterless arrow without parentheses: not converted');
            ctx = null;
          } else edits.push([open, open, 'ctx']);
        }
        if (ctx) {
          const bodyStart = fn.body.getStart(sf) + 1;
          const lineStart = text.lastIndexOf('\n', call.getStart(sf)) + 1;
          const indent = text.slice(lineStart, call.getStart(sf)).match(/^\s*/)[0] + '  ';
          edits.push([bodyStart, bodyStart, `\n${indent}${skipStatement(skipExpr, ctx, indent)}`]);
        }
      }
    }
    return true;
  }

  function skipStatement(expr, ctx, indent) {
    let e = expr;
    while (ts.isParenthesizedExpression(e)) e = e.expression;
    // `cond && 'reason'` and `cond ? false : 'reason'`: the condition and the reason apart.
    if (ts.isBinaryExpression(e) && e.operatorToken.kind === ts.SyntaxKind.AmpersandAmpersandToken && ts.isStringLiteralLike(e.right)) {
      return `if (${src(e.left)}) ${ctx}.skip(${src(e.right)});`;
    }
    if (ts.isConditionalExpression(e) && e.whenTrue.kind === ts.SyntaxKind.FalseKeyword) {
      const c = e.condition;
      const simple = ts.isIdentifier(c) || ts.isCallExpression(c) || ts.isPropertyAccessExpression(c);
      return `if (${simple ? '!' + src(c) : `!(${src(c)})`}) ${ctx}.skip(${typeReason(e.whenFalse)});`;
    }
    if (ts.isConditionalExpression(e) && e.whenFalse.kind === ts.SyntaxKind.FalseKeyword) {
      return `if (${src(e.condition)}) ${ctx}.skip(${typeReason(e.whenTrue)});`;
    }
    if (ts.isStringLiteralLike(e)) return `${ctx}.skip(${src(e)});`;
    if (ts.isIdentifier(e)) return `if (${src(e)}) ${ctx}.skip(String(${src(e)}));`;
    return `const skipReason = ${src(expr)};\n${indent}if (skipReason) ${ctx}.skip(String(skipReason));`;
  }
  const typeReason = (e) => (ts.isStringLiteralLike(e) || ts.isTemplateExpression(e) ? src(e) : `String(${src(e)})`);

  function hookCall(call) {
    const callee = call.expression;
    if (!ts.isIdentifier(callee) || !locals.has(callee.text) || !(locals.get(callee.text) in HOOKS) || shadowed(callee)) return false;
    const imported = locals.get(callee.text);
    if (callee.text === imported) replace(callee, HOOKS[imported]);
    const [, options] = call.arguments;
    if (options && ts.isObjectLiteralExpression(options)) {
      const timeout = options.properties.find((p) => ts.isPropertyAssignment(p) && p.name.getText(sf) === 'timeout');
      if (options.properties.length !== (timeout ? 1 : 0)) problem(options, `${imported}() options other than timeout: not converted`);
      replace(options, timeout ? src(timeout.initializer) : '');
    }
    return true;
  }

  function contextUse(node) {
    // t.diagnostic(...), t.after(...), t.name: the members of node's TestContext
    if (!ts.isPropertyAccessExpression(node) || !ts.isIdentifier(node.expression)) return;
    const sym = node.expression.text;
    let scope = node.parent;
    let param = null;
    while (scope && !param) {
      if (ts.isFunctionLike(scope)) param = [...contexts].find((p) => p.parent === scope && ts.isIdentifier(p.name) && p.name.text === sym) ?? null;
      if (param || ts.isSourceFile(scope)) break;
      // a nearer function that declares the same name shadows the context
      if (ts.isFunctionLike(scope) && scope.parameters?.some((p) => ts.isIdentifier(p.name) && p.name.text === sym)) return;
      scope = scope.parent;
    }
    if (!param) return;
    const member = node.name.text;
    if (member === 'name') return replace(node, `${sym}.task.name`);
    if (!(member in CONTEXT)) return problem(node, `test context .${member}: not converted`);
    const to = CONTEXT[member];
    if (to === null) return problem(node, `test context .${member}: no vitest equivalent converted`);
    if (to !== member) {
      replace(node.name, to);
      if (member === 'diagnostic' && ts.isCallExpression(node.parent) && ts.isExpressionStatement(node.parent.parent)) {
        // annotate() is a promise: wait for it where the test is async
        const fn = param.parent;
        const isAsync = fn.modifiers?.some((m) => m.kind === ts.SyntaxKind.AsyncKeyword);
        edits.push([node.getStart(sf), node.getStart(sf), isAsync ? 'await ' : 'void ']);
      }
    }
  }

  (function visit(node) {
    if (ts.isCallExpression(node)) {
      if (!hookCall(node)) testCall(node);
    }
    ts.forEachChild(node, visit);
  })(sf);
  (function visit(node) {
    contextUse(node);
    ts.forEachChild(node, visit);
  })(sf);

  // A file run by vitest from test/ rather than dist/test/: compiled siblings are not there.
  const siblingJs = /new URL\(\s*['"]\.{1,2}\/[^'"]+\.js['"]\s*,\s*import\.meta\.url\s*\)/g;
  for (const m of text.matchAll(siblingJs)) {
    problems.push(`${fileName}:${text.slice(0, m.index).split('\n').length}: ${m[0]}: vitest runs this file from its .ts source, so this .js sibling is not beside it`);
  }

  edits.sort((a, b) => b[0] - a[0] || b[1] - a[1]);
  let out = text;
  for (const [start, end, replacement] of edits) out = out.slice(0, start) + replacement + out.slice(end);
  return { text: out, problems };
}

if (import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const paths = process.argv.slice(2);
  let incomplete = 0;
  for (const file of (paths.length ? paths : ['test']).flatMap(filesUnder)) {
    const { text, problems } = convert(readFileSync(file, 'utf8'), file);
    if (text === null) continue;
    writeFileSync(file, text);
    console.log(`converted ${file}`);
    for (const p of problems) console.log(`  cannot convert: ${p}`);
    if (problems.length) incomplete++;
  }
  if (incomplete) {
    console.log(`${incomplete} file(s) need a hand: see "cannot convert" above`);
    process.exitCode = 1;
  }
}

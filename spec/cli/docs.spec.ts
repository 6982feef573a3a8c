/**
 * The docs a reader follows stay true to the tree: every path docs/TOUR.md names exists, every
 * function or class it names next to a file is defined in that file, nn/README.md's example is the
 * real nn/mlp.ts, and the README's layout table lists exactly the top-level folders.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(ROOT + path, 'utf8');
const FILE_PATH = /(?:[\w.-]+\/)+[\w.-]+\.(?:ts|wgsl|md|json)\b/g;

/** Is `symbol` (Name or Name.member) defined in `file`? */
function defines(file: string, symbol: string): boolean {
  const source = read(file);
  const [first, ...members] = symbol.split('.');
  const top = new RegExp(`\\b(?:class|function\\*?|interface|type|const)\\s+${first}\\b`).test(source);
  return top && members.every((m) => new RegExp(`\\b(?:get\\s+)?${m}\\s*(?:<[^>]*>)?\\(`).test(source));
}

describe('docs/TOUR.md and the README layout match the code', () => {
  const tour = read('docs/TOUR.md');

  it('every path the tour names, and every file it links to, exists', () => {
    const links = [...tour.matchAll(/\]\(([^)#\s]+)\)/g)].map((m) => m[1]).filter((t) => !/^[a-z]+:/.test(t));
    expect(links.length).to.be.greaterThan(30);
    const brokenLinks = links.filter((t) => !existsSync(fileURLToPath(new URL(t, new URL('docs/', `file://${ROOT}`)))));
    expect(brokenLinks, 'links in docs/TOUR.md (relative to docs/) that point nowhere').to.deep.equal([]);
    const prose = tour.replace(/\]\([^)]*\)/g, ']');
    const paths = [...new Set(prose.match(FILE_PATH) ?? [])];
    expect(paths.length).to.be.greaterThan(30);
    const missing = paths.filter((p) => !existsSync(ROOT + p));
    expect(missing, 'paths named in docs/TOUR.md that do not exist').to.deep.equal([]);
    expect(statSync(ROOT + 'spec/fixtures/convllava-tiny/model').isDirectory()).to.equal(true);
  });

  it('every function or class named next to a file in a table is defined in that file', () => {
    const refs: [string, string][] = [];
    for (const line of tour.split('\n').filter((l) => l.startsWith('|'))) {
      for (const cell of line.split('|')) {
        let file: string | null = null;
        for (const [, token] of cell.matchAll(/`([^`]+)`/g)) {
          if (/\.(ts|wgsl)$/.test(token)) file = token;
          else if (file && /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/.test(token)) refs.push([file, token]);
        }
      }
    }
    expect(refs.length).to.be.greaterThan(20);
    const wrong = refs.filter(([file, symbol]) => !file.endsWith('.ts') || !defines(file, symbol)).map(([f, s]) => `${f} ${s}`);
    expect(wrong, 'names in docs/TOUR.md not defined where it says').to.deep.equal([]);
  });

  it('the check can fail: a renamed method is caught', () => {
    expect(defines('nn/convnext-block.ts', 'ConvNextBlock.forward')).to.equal(true);
    expect(defines('nn/convnext-block.ts', 'ConvNextBlock.forwardd')).to.equal(false);
    expect(defines('nn/convnext-block.ts', 'ConvNextBlok.forward')).to.equal(false);
  });

  it("nn/README.md's example module is nn/mlp.ts, line for line", () => {
    const example = /```ts\n([\s\S]*?)```/.exec(read('nn/README.md'))![1];
    const source = read('nn/mlp.ts');
    const lines = example.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('//'));
    expect(lines.length).to.be.greaterThan(10);
    expect(lines.filter((l) => !source.includes(l)), 'lines of the example not in nn/mlp.ts').to.deep.equal([]);
  });

  it("the README's layout table lists exactly the top-level folders", () => {
    const readme = read('README.md');
    const section = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 1));
    const listed = new Set<string>();
    for (const line of section.split('\n').filter((l) => l.startsWith('| `'))) {
      for (const [, name] of line.split('|')[1].matchAll(/`([\w.-]+)\/`/g)) listed.add(name);
    }
    const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n');
    const folders = new Set(tracked.filter((p) => p.includes('/') && !p.startsWith('.')).map((p) => p.split('/')[0]));
    expect([...listed].sort()).to.deep.equal([...folders].sort());
  });
});

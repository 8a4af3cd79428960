// The schema as the migrate script sees it: the ordered `.sql` files of
// infrastructure/clickhouse/schemas, each with its checksum and its statements, written for the
// configured database.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Where the schema files live in the repository. */
export const SCHEMA_DIR = fileURLToPath(new URL("../../infrastructure/clickhouse/schemas", import.meta.url));

/** The database name the files are written for; replaced by the configured one. */
export const SCHEMA_DATABASE = "analytics_db";

/** One schema file, ready to apply. */
export interface SchemaFile {
  /** File name, e.g. `02-analytics_db.sql`: the key it is recorded under. */
  name: string;
  /** sha256 (hex) of the file as stored, before any substitution. */
  checksum: string;
  /** Its statements, comments removed, for `database`. */
  statements: string[];
}

/** Reads the `.sql` files of `dir` in name order, for `database`. */
export function readSchemaFiles(dir: string, database: string): SchemaFile[] {
  const names = readdirSync(dir).filter((n) => n.endsWith(".sql")).sort();
  return names.map((name) => {
    const text = readFileSync(join(dir, name), "utf8");
    return {
      name,
      checksum: createHash("sha256").update(text).digest("hex"),
      statements: splitStatements(substituteDatabase(text, database)),
    };
  });
}

const SCHEMA_DATABASE_WORD = new RegExp(`\\b${SCHEMA_DATABASE}\\b`, "g");

/** Replaces the word `analytics_db` (not `analytics_db_x`, not `my_analytics_db`) by `database`. */
export function substituteDatabase(text: string, database: string): string {
  return text.replace(SCHEMA_DATABASE_WORD, database);
}

/**
 * Splits SQL text on `;` into statements. Quotes ('...', "...", `...`, with backslash escapes and
 * doubled quotes) are kept whole; `--` and `/* *\/` comments are dropped (a line comment keeps its
 * newline). Empty statements are left out.
 */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let current = "";
  let i = 0;
  const flush = () => {
    const s = current.replace(/[ \t]+$/gm, "").replace(/\n{2,}/g, "\n").trim();
    if (s !== "") statements.push(s);
    current = "";
  };
  while (i < text.length) {
    const ch = text[i]!;
    const next = text[i + 1];
    if (ch === "-" && next === "-") {
      const end = text.indexOf("\n", i);
      i = end === -1 ? text.length : end;
    } else if (ch === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end === -1) throw new SyntaxError("unterminated /* comment");
      current += " ";
      i = end + 2;
    } else if (ch === "'" || ch === '"' || ch === "`") {
      const end = quoteEnd(text, i);
      current += text.slice(i, end);
      i = end;
    } else if (ch === ";") {
      flush();
      i++;
    } else {
      current += ch;
      i++;
    }
  }
  flush();
  return statements;
}

/** Index just after the quoted token starting at `start`. */
function quoteEnd(text: string, start: number): number {
  const quote = text[start];
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\\") i += 2;
    else if (ch === quote && text[i + 1] === quote) i += 2;
    else if (ch === quote) return i + 1;
    else i++;
  }
  throw new SyntaxError(`unterminated ${quote} quote`);
}

/** twilldb/server — the PostgreSQL v3 wire listener. Reserved: not implemented yet. */
import { notYetAvailable } from "../reserved.js";

export async function listen(): Promise<never> {
  throw notYetAvailable("the Postgres wire server", "twilldb/server");
}

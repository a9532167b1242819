/** twilldb/memory — the agent memory SDK (remember / recall / fork). Reserved: not implemented yet. */
import { notYetAvailable } from "../reserved.js";

export const Memory = {
  async open(): Promise<never> {
    throw notYetAvailable("the agent memory SDK", "twilldb/memory");
  },
};

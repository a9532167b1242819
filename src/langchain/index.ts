/** twilldb/langchain — LangChain VectorStore and LangGraph BaseStore adapters. Reserved: not implemented yet. */
import { notYetAvailable } from "../reserved.js";

export const TwillVectorStore = {
  async fromDatabase(): Promise<never> {
    throw notYetAvailable("the LangChain adapter", "twilldb/langchain");
  },
};

"""The agent core: Agent (model + plugins + limits), Run, the tool loop and the executor."""

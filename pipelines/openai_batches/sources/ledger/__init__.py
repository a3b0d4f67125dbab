"""The request ledger: which batch files to read, in which order, within the budget, and their lines parsed
as they stream."""

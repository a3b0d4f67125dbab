"""What tests share: fake servers (`fake_api`), the CLI as cron runs it (`cli`), assertions over databases and
files (`assertions`), the simulated workload's fixed values (`workload`), analysis data (`analysis`) and the
throwaway PostgreSQL (`postgres`, a pytest plugin). Tests import from here, never from another test module."""

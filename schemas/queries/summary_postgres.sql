-- Current state in Postgres, for `tapeflow demo`'s summary.

-- name: accounts
SELECT account_id, cash, realised_pnl, unrealised_pnl, equity
FROM accounts
ORDER BY account_id;

-- name: open_positions
SELECT count(*) AS n FROM positions WHERE qty <> 0;

-- name: alerts_by_rule
SELECT rule, severity, count(*) AS n
FROM alerts
GROUP BY rule, severity
ORDER BY rule, severity;

-- name: execution_outcomes
SELECT outcome, count(*) AS n FROM execution_log GROUP BY outcome ORDER BY outcome;

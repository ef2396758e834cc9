"""The runbook's integration cases by name and priority (runbook 2.1): P0 must pass, P1 is
conditional, P2 good to have. Data only; ``engine.drill.selftest`` runs them."""

PRIORITY = {"TC-02": "P0", "TC-03": "P0", "TC-09": "P0", "TC-01": "P1", "TC-06": "P1",
            "TC-04": "P2", "TC-05": "P2", "TC-07": "P2", "TC-08": "P2", "TC-10": "P2"}
NAMES = {
    "TC-01": "Worker claim conflict", "TC-02": "Kill switch before start",
    "TC-03": "Kill switch after ADD INDEX", "TC-04": "LOCK=NONE not supported",
    "TC-05": "Index already exists", "TC-06": "Verification fail + rollback OK",
    "TC-07": "Verification fail + rollback fail", "TC-08": "Low sample - inconclusive",
    "TC-09": "Kill switch API failure (fail-closed)", "TC-10": "Worker crash + lease expiry",
}

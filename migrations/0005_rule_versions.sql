-- cebus schema, version 5: rule versions, so that open streams follow
-- their rule.
--
-- Every change of a rule (its pattern, targets, description or enabled
-- flag) adds one to its version in the transaction that makes it, and
-- notifies channel "cebus_rules" with the bus id. Each server's delivery
-- thread compares the versions its rule streams were built from with these,
-- on a notification and once a second (docs/decisions/0010).
ALTER TABLE rules ADD COLUMN version bigint NOT NULL DEFAULT 1;

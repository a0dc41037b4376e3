-- ceiling for reads: an empty round trip (what no function call can beat)
SELECT 1;

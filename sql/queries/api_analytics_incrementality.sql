-- Read API: treated vs holdout conversions summed over campaigns, as of the last day in
-- the range that has incrementality rows (the figures are cumulative per campaign).
SELECT as_of_date,
       count(*) AS campaigns,
       sum(treated_users) AS treated_users,
       sum(holdout_users) AS holdout_users,
       sum(treated_conversions) AS treated_conversions,
       sum(holdout_conversions) AS holdout_conversions
FROM campaign_incrementality
WHERE as_of_date = (SELECT max(as_of_date) FROM campaign_incrementality
                    WHERE as_of_date BETWEEN :start_date AND :end_date)
GROUP BY as_of_date

/** What the host modules `spacetime:sys@2.0` and `@2.1` export (module-abi.md §1.2). */

/** The functions `spacetime:sys@2.0` exports (besides the `moduleHooks` symbol). */
export const SYS_2_0_EXPORTS: readonly string[] = [
  "table_id_from_name",
  "index_id_from_name",
  "datastore_table_row_count",
  "datastore_table_scan_bsatn",
  "datastore_index_scan_range_bsatn",
  "row_iter_bsatn_advance",
  "row_iter_bsatn_close",
  "datastore_insert_bsatn",
  "datastore_update_bsatn",
  "datastore_delete_by_index_scan_range_bsatn",
  "datastore_delete_all_by_eq_bsatn",
  "volatile_nonatomic_schedule_immediate",
  "console_log",
  "console_timer_start",
  "console_timer_end",
  "identity",
  "get_jwt_payload",
  "procedure_http_request",
  "procedure_start_mut_tx",
  "procedure_abort_mut_tx",
  "procedure_commit_mut_tx",
  "datastore_index_scan_point_bsatn",
  "datastore_delete_by_index_scan_point_bsatn",
];

/** The functions `spacetime:sys@2.1` adds. */
export const SYS_2_1_EXPORTS: readonly string[] = ["datastore_clear"];

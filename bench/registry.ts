// Every column of the table, in display order.
import { bareColumn, rawBwrapColumn, type Column } from './columns.js';
import { cordonCliColumn, cordonLibraryColumn, cordonSessionColumn } from './cordon.js';
import { codexCliColumn, codexHelperColumn, srtCliColumn, srtLibraryColumn } from './peers.js';

export const COLUMNS: readonly Column[] = [
  bareColumn,
  rawBwrapColumn,
  cordonCliColumn,
  cordonLibraryColumn,
  cordonSessionColumn,
  srtCliColumn,
  srtLibraryColumn,
  codexCliColumn,
  codexHelperColumn,
];

// Where the API marks the downs it accepts, for cancel to see them before the ingest applies them.
import type { NativeEvent } from '../core/types.ts';

export interface DownMarks {
  /** Keeps `ev` as its xPU's last down unless a later-received one is kept already. */
  mark(ev: NativeEvent): Promise<void>;
  last(node: string, xpu: string): Promise<NativeEvent | undefined>;
}

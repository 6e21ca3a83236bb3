/**
 * A JSON answer already serialised (by the database, see `ReadingRepository.recentJson`): sent
 * as its UTF-8 bytes, encoded once however many answers share it.
 */
export class JsonText {
  private bytes: Buffer | undefined;
  constructor(readonly text: string) {}
  toBuffer(): Buffer {
    if (this.bytes === undefined) this.bytes = Buffer.from(this.text, 'utf8');
    return this.bytes;
  }
}

import assert from 'assert/strict';
import { ThrottledStatus, type StatusView } from '../../nodes/hot-window/hot-window-status';

const texts = {
  connected: (n: number | undefined) => (n === undefined ? 'connected' : `connected · ${n} readings`),
  connecting: 'connecting',
  disconnected: 'disconnected',
  closed: 'closed',
};
const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('ThrottledStatus', () => {
  it('shows the first change at once and the last one after the interval, nothing between', async () => {
    const shown: StatusView[] = [];
    const s = new ThrottledStatus((v) => shown.push(v), texts, 'connected', true, 50);
    assert.deepEqual(shown, [{ fill: 'green', shape: 'dot', text: 'connected · 0 readings' }]);
    for (let i = 0; i < 100; i++) s.succeeded(1);
    assert.equal(shown.length, 2);
    assert.equal(shown[1].text, 'connected · 1 readings');
    await wait(80);
    assert.equal(shown.length, 3);
    assert.equal(shown[2].text, 'connected · 100 readings');
    await wait(80);
    assert.equal(shown.length, 3, 'nothing new, nothing shown');
    s.close();
  });

  it('shows errors and connection states', async () => {
    const shown: StatusView[] = [];
    const s = new ThrottledStatus((v) => shown.push(v), texts, 'connecting', false, 0);
    assert.deepEqual(shown[0], { fill: 'yellow', shape: 'ring', text: 'connecting' });
    s.setState('connected');
    await wait(5);
    assert.deepEqual(s.view(), { fill: 'green', shape: 'dot', text: 'connected' });
    s.setState('disconnected');
    assert.deepEqual(s.view(), { fill: 'red', shape: 'ring', text: 'disconnected' });
    s.setState('disconnected', new Error('connect ECONNREFUSED'));
    assert.deepEqual(s.view(), { fill: 'red', shape: 'ring', text: 'connect ECONNREFUSED' });
    s.setState('connected');
    assert.equal(s.view().fill, 'green');
    s.failed(new Error('x'.repeat(100)));
    assert.equal(s.view().text.length, 60);
    s.succeeded();
    assert.equal(s.view().text, 'connected');
    s.close();
  });
});

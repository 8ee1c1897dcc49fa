/**
 * ffsystemd front end: a "Firefox" launcher tile and command, Firefox tabs that survive a
 * page reload, and a "Firefox" section in the running-sessions panel.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IRunningSessionManagers } from '@jupyterlab/running';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { UUID } from '@lumino/coreutils';

import { FirefoxAPI } from './api';
import { firefoxIcon } from './icon';
import { isSessionId } from './model';
import { FirefoxPanel } from './panel';
import { FirefoxRunningManager } from './running';
import { FirefoxWidget } from './widget';

const PLUGIN_ID = 'ffsystemd:plugin';

/** Command ids. */
export namespace CommandIDs {
  /** Open a Firefox tab: a new session, or (arg `sessionId`) an existing one. */
  export const open = 'ffsystemd:open';
}

/** The user settings of schema/plugin.json. */
interface IFirefoxSettings {
  confirmClose: boolean;
  defaultStartUrl: string;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Firefox tabs backed by ffsystemd sessions (Xpra + Firefox in systemd scopes).',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, ILayoutRestorer, IRunningSessionManagers, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    runningManagers: IRunningSessionManagers | null,
    settingRegistry: ISettingRegistry | null
  ): void => {
    const api = new FirefoxAPI(ServerConnection.makeSettings());
    const config: IFirefoxSettings = { confirmClose: true, defaultStartUrl: '' };
    const tracker = new WidgetTracker<FirefoxWidget>({ namespace: 'ffsystemd' });
    let running: FirefoxRunningManager | null = null;

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        config.confirmClose = settings.get('confirmClose').composite !== false;
        const url = settings.get('defaultStartUrl').composite;
        config.defaultStartUrl = typeof url === 'string' ? url : '';
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('ffsystemd: cannot load settings', reason));
    }

    const findTab = (id: string): FirefoxWidget | undefined =>
      tracker.find(widget => widget.content.sessionId === id);

    const openTab = async (
      sessionId: string | null,
      tabKey: string | null
    ): Promise<FirefoxWidget> => {
      const content = new FirefoxPanel({ api, startUrl: () => config.defaultStartUrl });
      const widget = new FirefoxWidget({
        content,
        tabKey: tabKey ?? UUID.uuid4(),
        confirmClose: () => config.confirmClose
      });
      content.changed.connect(() => {
        if (tracker.has(widget)) {
          void tracker.save(widget);
        }
        running?.refreshRunning();
      });
      content.frameFocused.connect(() => app.shell.activateById(widget.id));
      // Named in the tracker before it enters the shell, so the saved layout includes it.
      await tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      void (sessionId ? content.attach(sessionId) : content.launch());
      return widget;
    };

    app.commands.addCommand(CommandIDs.open, {
      label: args => (args.isPalette ? 'New Firefox' : 'Firefox'),
      caption: 'Open a real Firefox in a JupyterLab tab',
      icon: args => (args.isPalette ? undefined : firefoxIcon),
      execute: async args => {
        const id = args.sessionId;
        const tabKey = typeof args.tab === 'string' ? args.tab : null;
        if (isSessionId(id)) {
          const existing = findTab(id);
          if (existing) {
            app.shell.activateById(existing.id);
            return existing;
          }
          return openTab(id, tabKey);
        }
        if (tabKey) {
          // Restoring a tab that had no live session (failed or ended): nothing to re-open.
          throw new Error('ffsystemd: this Firefox tab had no running session to restore');
        }
        return openTab(null, null);
      }
    });

    launcher?.add({ command: CommandIDs.open, category: 'Other', rank: 1 });
    palette?.addItem({ command: CommandIDs.open, category: 'Firefox', args: { isPalette: true } });

    if (restorer) {
      // A reload re-opens the tabs of live sessions and re-attaches them (no new launch).
      void restorer.restore(tracker, {
        command: CommandIDs.open,
        args: widget => ({ tab: widget.tabKey, sessionId: widget.content.liveSessionId }),
        name: widget => widget.tabKey
      });
    }

    if (runningManagers) {
      running = new FirefoxRunningManager({
        api,
        open: id => void app.commands.execute(CommandIDs.open, { sessionId: id }),
        stopped: ids => {
          tracker.forEach(widget => {
            const id = widget.content.sessionId;
            if (id && (ids === 'all' || ids.includes(id))) {
              void widget.content.check();
            }
          });
        }
      });
      runningManagers.add(running);
      // The panel ignores updates while hidden: ask again once the restored layout is shown.
      void app.restored.then(() => running?.refreshRunning());
    }
  }
};

export default plugin;

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
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { UUID } from '@lumino/coreutils';

import { FirefoxAPI } from './api';
import { firefoxIcon } from './icon';
import { isSessionId } from './model';
import { FirefoxPanel } from './panel';
import { FirefoxRunningManager } from './running';
import { SessionStore } from './store';
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
  optional: [
    ILauncher,
    ICommandPalette,
    ILayoutRestorer,
    IRunningSessionManagers,
    ISettingRegistry,
    ITranslator
  ],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    runningManagers: IRunningSessionManagers | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('ffsystemd');
    const api = new FirefoxAPI(ServerConnection.makeSettings());
    // One poll of the session list for the whole page: every tab and the running panel read it.
    const store = new SessionStore({ source: api });
    const config: IFirefoxSettings = { confirmClose: true, defaultStartUrl: '' };
    const tracker = new WidgetTracker<FirefoxWidget>({ namespace: 'ffsystemd' });

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
      const content = new FirefoxPanel({
        api,
        store,
        startUrl: () => config.defaultStartUrl,
        trans
      });
      const widget = new FirefoxWidget({
        content,
        tabKey: tabKey ?? UUID.uuid4(),
        confirmClose: () => config.confirmClose,
        trans
      });
      content.changed.connect(() => {
        if (tracker.has(widget)) {
          void tracker.save(widget);
        }
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
      label: args => (args.isPalette ? trans.__('New Firefox') : trans.__('Firefox')),
      caption: trans.__('Open a real Firefox in a JupyterLab tab'),
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
    palette?.addItem({
      command: CommandIDs.open,
      category: trans.__('Firefox'),
      args: { isPalette: true }
    });

    if (restorer) {
      // A reload re-opens the tabs of live sessions and re-attaches them (no new launch).
      void restorer.restore(tracker, {
        command: CommandIDs.open,
        args: widget => ({ tab: widget.tabKey, sessionId: widget.content.liveSessionId }),
        name: widget => widget.tabKey
      });
    }

    if (runningManagers) {
      // Sessions stopped from the panel end their tabs through the store's next list.
      const running = new FirefoxRunningManager({
        store,
        open: id => void app.commands.execute(CommandIDs.open, { sessionId: id }),
        trans
      });
      runningManagers.add(running);
    }
    // The panel ignores updates while hidden: ask again once the restored layout is shown.
    void app.restored.then(() => store.refresh());
  }
};

export default plugin;

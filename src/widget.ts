/**
 * A Firefox tab: the panel in a main-area widget whose close ends the session.
 */
import { Dialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { refreshIcon, stopIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';

import { firefoxIcon } from './icon';
import { ITrans, untranslated } from './model';
import { FirefoxPanel } from './panel';

export namespace FirefoxWidget {
  export interface IOptions {
    content: FirefoxPanel;
    /** Stable key of this tab in the saved layout (kept across page reloads). */
    tabKey: string;
    /** Whether to ask before closing a tab whose Firefox still runs (setting). */
    confirmClose: () => boolean;
    trans?: ITrans;
  }
}

export class FirefoxWidget extends MainAreaWidget<FirefoxPanel> {
  readonly tabKey: string;

  constructor(options: FirefoxWidget.IOptions) {
    super({ content: options.content });
    this.tabKey = options.tabKey;
    this._confirmClose = options.confirmClose;
    const trans = (this._trans = options.trans ?? untranslated);
    this.addClass('jp-FFSystemd-widget');
    this.title.label = 'Firefox';
    this.title.icon = firefoxIcon;
    this.title.closable = true;
    this._reload = new ToolbarButton({
      icon: refreshIcon,
      tooltip: trans.__('Reload the view (reconnects to the same Firefox)'),
      onClick: () => this.content.reloadFrame()
    });
    this._stop = new ToolbarButton({
      icon: stopIcon,
      tooltip: trans.__('Stop this Firefox'),
      onClick: () => void this.content.stop()
    });
    this.toolbar.addItem('reload', this._reload);
    this.toolbar.addItem('stop', this._stop);
    this.content.changed.connect(this._onPanelChanged, this);
    this._onPanelChanged();
  }

  protected onCloseRequest(msg: Message): void {
    if (this._closing) {
      return;
    }
    this._closing = true;
    void this._confirmThenClose(msg).finally(() => {
      this._closing = false;
    });
  }

  private async _confirmThenClose(msg: Message): Promise<void> {
    const panel = this.content;
    if (panel.state === 'running' && panel.hasLiveSession && this._confirmClose()) {
      const result = await showDialog({
        title: this._trans.__('Close Firefox?'),
        body: this._trans.__(
          'Closing this tab stops its Firefox; open pages and the session profile are lost.'
        ),
        buttons: [
          Dialog.cancelButton({ label: this._trans.__('Cancel') }),
          Dialog.warnButton({ label: this._trans.__('Stop Firefox') })
        ]
      });
      if (!result.button.accept || this.isDisposed) {
        return;
      }
    }
    void panel.shutdown();
    super.onCloseRequest(msg);
  }

  private _onPanelChanged(): void {
    const panel = this.content;
    this._reload.enabled = panel.state === 'running';
    this._stop.enabled = panel.hasLiveSession;
    const trans = this._trans;
    const lines = ['Firefox'];
    if (panel.sessionId) {
      lines.push(trans.__('Session %1', panel.sessionId));
    }
    if (panel.session?.start_url) {
      lines.push(trans.__('Start page: %1', panel.session.start_url));
    }
    lines.push(trans.__('State: %1', panel.state));
    this.title.caption = lines.join('\n');
  }

  private _confirmClose: () => boolean;
  private _trans: ITrans;
  private _reload: ToolbarButton;
  private _stop: ToolbarButton;
  private _closing = false;
}

/**
 * A Firefox tab: the panel in a main-area widget whose close ends the session.
 */
import { Dialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { refreshIcon, stopIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';

import { firefoxIcon } from './icon';
import { FirefoxPanel } from './panel';

export namespace FirefoxWidget {
  export interface IOptions {
    content: FirefoxPanel;
    /** Stable key of this tab in the saved layout (kept across page reloads). */
    tabKey: string;
    /** Whether to ask before closing a tab whose Firefox still runs (setting). */
    confirmClose: () => boolean;
  }
}

export class FirefoxWidget extends MainAreaWidget<FirefoxPanel> {
  readonly tabKey: string;

  constructor(options: FirefoxWidget.IOptions) {
    super({ content: options.content });
    this.tabKey = options.tabKey;
    this._confirmClose = options.confirmClose;
    this.addClass('jp-FFSystemd-widget');
    this.title.label = 'Firefox';
    this.title.icon = firefoxIcon;
    this.title.closable = true;
    this._reload = new ToolbarButton({
      icon: refreshIcon,
      tooltip: 'Reload the view (reconnects to the same Firefox)',
      onClick: () => this.content.reloadFrame()
    });
    this._stop = new ToolbarButton({
      icon: stopIcon,
      tooltip: 'Stop this Firefox',
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
        title: 'Close Firefox?',
        body: 'Closing this tab stops its Firefox; open pages and the session profile are lost.',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop Firefox' })]
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
    const lines = ['Firefox'];
    if (panel.sessionId) {
      lines.push(`Session ${panel.sessionId}`);
    }
    if (panel.session?.start_url) {
      lines.push(`Start page: ${panel.session.start_url}`);
    }
    lines.push(`State: ${panel.state}`);
    this.title.caption = lines.join('\n');
  }

  private _confirmClose: () => boolean;
  private _reload: ToolbarButton;
  private _stop: ToolbarButton;
  private _closing = false;
}
